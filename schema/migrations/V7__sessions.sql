-- oauth-api (docs/oauth-api.md, "Sessions"): a login that has not completed yet.
--
-- GET /facebook/login mints a user uuid for a browser without a session, but the
-- person is not known until the callback completes a connect: only then is a
-- `users` row made and a `sessions` row issued under a new id. Until then the
-- browser holds a pending session, which grants nothing but finishing its login,
-- lasts PENDING_SESSION_TTL (minutes) and is deleted at the callback or once
-- expired. user_id references no users row on purpose: there is none yet.
CREATE TABLE pending_sessions (
    id_sha256  bytea PRIMARY KEY CHECK (length(id_sha256) = 32),
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX pending_sessions_expiry ON pending_sessions (expires_at);
