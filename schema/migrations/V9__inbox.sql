-- What the inbox API reads (contract v3 §6, docs/inbox.md), all derived from the
-- events like the rest of the projection (`projector rebuild` reproduces it):
--   * conversations: the customer's last message time (reply window), the
--     customer's name (newest `customer_profile` by event time, then id);
--   * conversation_events.app_id: the echo's `app_id` (which app sent a reply);
--   * reactions.by_page: who reacted, so one reaction per (message, side) stands;
--   * unread_count now counts the customer's messages after the later of the
--     page's last reply and the read watermark (it was: after the last reply);
--   * conversation_changes: one row per conversation a committed batch changed,
--     tailed by oauth-api for `GET /api/events` (pruned after 24 hours);
--   * indexes for the list's keyset order and its `q` search.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE conversations
    ADD COLUMN last_in_ms bigint,
    ADD COLUMN customer_name text,
    ADD COLUMN customer_name_at_ms bigint,
    ADD COLUMN customer_name_tie text;

ALTER TABLE conversation_events ADD COLUMN app_id text;
ALTER TABLE reactions ADD COLUMN by_page boolean NOT NULL DEFAULT false;

-- `data` is stored verbatim and may hold what jsonb refuses (a lone surrogate):
-- such rows keep NULL here, as the projector would store them.
CREATE FUNCTION pg_temp.try_jsonb(t text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

UPDATE conversation_events
SET app_id = pg_temp.try_jsonb(data) -> 'message' ->> 'app_id'
WHERE direction = 'out';

UPDATE reactions r
SET by_page = coalesce((pg_temp.try_jsonb(c.data) -> 'sender' ->> 'id') = r.page_id, false)
FROM conversation_events c
WHERE c.item_id = r.event_id;

UPDATE conversations c SET last_in_ms = (
    SELECT max(m.timestamp_ms) FROM conversation_events m
    WHERE m.page_id = c.page_id AND m.psid = c.psid AND m.in_file AND m.direction = 'in');

UPDATE conversations c SET unread_count = (
    SELECT count(*)::int FROM conversation_events m
    WHERE m.page_id = c.page_id AND m.psid = c.psid AND m.in_file AND m.direction = 'in'
      AND m.timestamp_ms > GREATEST(
          coalesce(c.last_out_ms, -1),
          coalesce((SELECT r.read_watermark FROM receipts r
                    WHERE r.page_id = c.page_id AND r.psid = c.psid), -1)));

-- Written by the projector in the batch's transaction (so a row is visible exactly
-- when the change is), followed by NOTIFY pagesync_conversation_changes.
CREATE TABLE conversation_changes (
    id         bigserial PRIMARY KEY,
    page_id    text NOT NULL,
    psid       text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_changes_age ON conversation_changes (changed_at);

-- The list: newest activity first, keyset on (last_message_ms, page_id, psid).
CREATE INDEX conversations_list
    ON conversations (last_message_ms DESC, page_id DESC, psid DESC)
    WHERE last_message_ms IS NOT NULL;
CREATE INDEX conversations_page_list
    ON conversations (page_id, last_message_ms DESC, psid DESC)
    WHERE last_message_ms IS NOT NULL;
-- `q`: case-insensitive substring of the customer's name or a message's text.
CREATE INDEX conversations_name_trgm ON conversations USING gin (customer_name gin_trgm_ops);
CREATE INDEX conversation_events_text_trgm ON conversation_events USING gin (text gin_trgm_ops)
    WHERE direction IS NOT NULL;
