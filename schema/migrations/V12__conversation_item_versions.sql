-- Issue 14, a rewrite cost nearly flat in a conversation's length
-- (docs/projection.md, "Files"). Every write of a conversation item takes the next
-- value of one sequence, so the projector can ask Postgres for only the items of a
-- conversation written since it last rendered it, and keep the rendered rest in
-- memory. Batches are applied one at a time (the apply lock, taken before any
-- item is written), so once a version is visible no smaller one commits later.
CREATE SEQUENCE conversation_item_version;

-- NULL on rows written before this migration: read when a conversation is read whole.
ALTER TABLE conversation_events ADD COLUMN item_version bigint;
ALTER TABLE conversation_events
    ALTER COLUMN item_version SET DEFAULT nextval('conversation_item_version');
CREATE INDEX conversation_events_version
    ON conversation_events (page_id, psid, item_version) WHERE in_file;

-- Set when a conversation loses an item (a better copy files it under another
-- conversation) and when the row is created (again, after a rebuild): a
-- conversation whose reset is newer than what the projector rendered is read whole.
ALTER TABLE conversations ADD COLUMN items_reset bigint;
ALTER TABLE conversations
    ALTER COLUMN items_reset SET DEFAULT nextval('conversation_item_version');
