-- Contract v3 §8: the poller also reads a page's Instagram conversations
-- (`GET /{page}/conversations?platform=instagram`), incrementally like Messenger's
-- but with a checkpoint of their own: the newest Instagram `updated_time` seen.
ALTER TABLE poll_checkpoints ADD COLUMN instagram_newest_updated_time timestamptz;

-- Issue 11, webhook coverage: where each message was first seen, by the stream
-- order of its copies (the lowest stream sequence wins, so a rebuild, which replays
-- the stream in order, gives the same rows). `origin` is webhook, poll or send.
CREATE TABLE message_first_seen (
    mid          text PRIMARY KEY,
    page_id      text NOT NULL,
    psid         text NOT NULL,
    origin       text NOT NULL CHECK (origin IN ('webhook', 'poll', 'send')),
    stream_seq   bigint NOT NULL,
    timestamp_ms bigint NOT NULL,
    FOREIGN KEY (page_id, psid) REFERENCES conversations (page_id, psid)
);
CREATE INDEX message_first_seen_page ON message_first_seen (page_id, timestamp_ms);
