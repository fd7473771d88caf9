-- Pages connected for polling (written by oauth-api, read and updated by the poller).
-- The page token is stored only encrypted: AES-256-GCM, bytes = 96-bit nonce || ciphertext
-- and tag, the page id as associated data, and the id of the key that sealed it so keys rotate.
CREATE TABLE integrations (
    page_id                 text PRIMARY KEY CHECK (page_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    owner_user_id           uuid,
    page_token_ciphertext   bytea,
    page_token_key_id       text,
    active                  boolean NOT NULL DEFAULT true,
    status                  text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'inactive', 'needs_reauth')),
    -- Why the status is what it is (e.g. the Graph error code), never a token.
    status_reason           text,
    last_poll_at            timestamptz,
    last_poll_outcome       text,
    last_webhook_at         timestamptz,
    subscription_status     text NOT NULL DEFAULT 'unknown'
                            CHECK (subscription_status IN ('unknown', 'subscribed', 'resubscribed', 'failed')),
    subscription_checked_at timestamptz,
    resubscribed_count      integer NOT NULL DEFAULT 0,
    last_resubscribed_at    timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((page_token_ciphertext IS NULL) = (page_token_key_id IS NULL))
);

CREATE INDEX integrations_pollable ON integrations (page_id)
    WHERE active AND status <> 'needs_reauth' AND page_token_ciphertext IS NOT NULL;

-- Per-page poll progress, advanced only after JetStream acknowledged every event of a cycle.
CREATE TABLE poll_checkpoints (
    page_id             text PRIMARY KEY REFERENCES integrations (page_id) ON DELETE CASCADE,
    -- Newest conversation updated_time seen; the next cycle reads back to this minus an overlap.
    newest_updated_time timestamptz,
    -- SHA-256 of the last published page snapshot's data: unchanged pages publish nothing.
    snapshot_sha256     text,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
