-- Contract v3 §8: Instagram conversations go through the same pipeline. An
-- Instagram professional account is an "account" like a page: it gets its own
-- `pages` row (its id is the subject and file token), with `platform` telling the
-- two apart and `linked_page_id` naming the Facebook page whose token serves it
-- (and whose owner owns it). Existing rows are Messenger.
ALTER TABLE pages
    ADD COLUMN platform text NOT NULL DEFAULT 'messenger'
        CHECK (platform IN ('messenger', 'instagram')),
    ADD COLUMN linked_page_id text REFERENCES pages (page_id) ON DELETE SET NULL,
    ADD CHECK ((platform = 'instagram') OR (linked_page_id IS NULL));

ALTER TABLE conversations
    ADD COLUMN platform text NOT NULL DEFAULT 'messenger'
        CHECK (platform IN ('messenger', 'instagram'));

-- A page's linked Instagram account (at most one, as Facebook allows).
ALTER TABLE integrations ADD COLUMN instagram_account_id text
    CHECK (instagram_account_id ~ '^[A-Za-z0-9_-]{1,64}$');
CREATE INDEX pages_linked ON pages (linked_page_id) WHERE linked_page_id IS NOT NULL;
