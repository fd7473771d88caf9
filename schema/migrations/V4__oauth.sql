-- oauth-api (docs/oauth-api.md): people who connect pages, their sessions, and the
-- nonces of OAuth states already spent.

-- A person, known only by the uuid oauth-api gave them at their first login.
-- pages.owner_user_id and integrations.owner_user_id hold these ids.
CREATE TABLE users (
    user_id    uuid PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A login session. The cookie holds 256 random bits; only their SHA-256 is stored,
-- so a copy of this table cannot be replayed as cookies.
CREATE TABLE sessions (
    id_sha256  bytea PRIMARY KEY CHECK (length(id_sha256) = 32),
    user_id    uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Nonces of OAuth states that reached the callback: a state is accepted once.
-- Rows outlive the 10-minute validity of their state, then are pruned.
CREATE TABLE oauth_state_nonces (
    nonce     text PRIMARY KEY,
    issued_at timestamptz NOT NULL,
    used_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_state_nonces_issued ON oauth_state_nonces (issued_at);

-- The page's name as Facebook gave it when it was connected (shown in the
-- integrations list; the projection has the current one).
ALTER TABLE integrations ADD COLUMN name text;
