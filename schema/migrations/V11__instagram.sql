-- Contract v3 §8: the poller also reads a page's Instagram conversations
-- (`GET /{page}/conversations?platform=instagram`), incrementally like Messenger's
-- but with a checkpoint of their own: the newest Instagram `updated_time` seen.
ALTER TABLE poll_checkpoints ADD COLUMN instagram_newest_updated_time timestamptz;
