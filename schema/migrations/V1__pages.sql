-- Every page the system knows of. owner_user_id is set when a user connects the
-- page through OAuth; the projector then writes its files under users/<uuid>/.
CREATE TABLE pages (
    page_id       text PRIMARY KEY CHECK (page_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    owner_user_id uuid,
    created_at    timestamptz NOT NULL DEFAULT now()
);
