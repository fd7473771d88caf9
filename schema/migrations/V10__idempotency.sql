-- oauth-api (docs/inbox.md, "Idempotency"): replies sent with an Idempotency-Key.
--
-- A reply reserves its key first (a row without a status), then calls the Send
-- API, then stores the final answer. A second request with the key finds the row:
-- the same request gets the stored answer again (or 409 while it is pending),
-- another request gets 422. Keys are per caller: `caller` is `operator` or the
-- session user's uuid. Rows older than 24 hours are pruned (and may be taken over
-- before then); a pending row older than a few minutes belongs to a request that
-- died and may be taken over too.
CREATE TABLE idempotency_keys (
    caller         text NOT NULL,
    key            text NOT NULL CHECK (key ~ '^[!-~]{1,255}$'),
    -- SHA-256 of the method, the path and the body's canonical JSON.
    request_sha256 bytea NOT NULL CHECK (length(request_sha256) = 32),
    -- NULL while the first request is in progress.
    status         smallint,
    body           jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key),
    CHECK ((status IS NULL) = (body IS NULL))
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
