-- One row per conversation item instead of three (docs/projection.md, "Tables").
-- A message used to be written to `conversation_events`, `messages` and
-- `applied_events`: three heap rows and five index entries, which bounded the
-- projector at ~18k events/s on the benchmark machine. Now:
--   * `conversation_events` holds every messaging item once, keyed by `item_id`
--     (the message's mid when the item carries a message, else the event id), with
--     the message columns the inbox needs and the stream sequence it came from;
--   * `applied_other_events` records only the events that have no row of their own
--     there (page events, unknown/invalid/unparsed, a `standby` carrying a message,
--     whose item is keyed by its mid);
--   * `messages` and `applied_events` become views with their old columns, so
--     readers (poller, oauth-api, operators) keep their queries.

ALTER TABLE conversation_events RENAME COLUMN event_id TO item_id;
ALTER TABLE conversation_events
    ADD COLUMN stream_seq  bigint,
    ADD COLUMN applied_at  timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN direction   text CHECK (direction IN ('in', 'out')),
    ADD COLUMN text        text,
    ADD COLUMN attachments jsonb;

ALTER TABLE applied_events RENAME TO applied_other_events;

UPDATE conversation_events c SET stream_seq = a.stream_seq, applied_at = a.applied_at
FROM applied_other_events a
WHERE a.event_id = c.item_id;
UPDATE conversation_events SET stream_seq = 0 WHERE stream_seq IS NULL;
ALTER TABLE conversation_events ALTER COLUMN stream_seq SET NOT NULL;

-- Carry the message columns over to the winning copy of each mid.
UPDATE conversation_events c SET
    direction = m.direction, text = m.text, attachments = m.attachments
FROM messages m
WHERE m.event_id = c.item_id;
-- A standby item carrying a message was stored under its own event id. Where it
-- won its mid, the losing copy stored under the mid goes, and the standby takes the mid;
-- where it lost, it goes (its id stays recorded as applied).
DELETE FROM conversation_events c
USING messages m
WHERE c.item_id = m.mid AND m.event_id <> m.mid;
DELETE FROM applied_other_events a
USING messages m
WHERE a.event_id = m.mid AND m.event_id <> m.mid;
UPDATE conversation_events c SET item_id = m.mid
FROM messages m
WHERE c.item_id = m.event_id AND m.event_id <> m.mid;
DELETE FROM conversation_events
WHERE event_type = 'standby' AND direction IS NULL AND data::jsonb ? 'message';
DELETE FROM applied_other_events a
USING conversation_events c
WHERE a.event_id = c.item_id AND NOT (c.event_type = 'standby' AND c.direction IS NOT NULL);

DROP TABLE messages;

ALTER INDEX conversation_events_pkey RENAME TO conversation_events_item;
ALTER TABLE applied_other_events RENAME CONSTRAINT applied_events_pkey TO applied_other_events_pkey;

-- Messages in and out, keyed by Facebook's mid; `source` names the winning copy's origin.
CREATE VIEW messages AS
SELECT item_id AS mid, page_id, psid, direction, text, attachments, timestamp_ms,
       to_timestamp(timestamp_ms / 1000.0) AS sent_at,
       CASE source WHEN 'pagesync/ingest' THEN 'webhook'
                   WHEN 'pagesync/poller' THEN 'poll'
                   ELSE 'send' END AS source,
       source_rank, event_type
FROM conversation_events
WHERE direction IS NOT NULL;

-- Every event id applied, with the source of the copy that won (contract §3). A
-- `standby` carrying a message is listed by its own id (from applied_other_events);
-- its item is the message's.
CREATE VIEW applied_events AS
SELECT item_id AS event_id, event_type, source, source_rank, page_id, psid, stream_seq, applied_at
FROM conversation_events
WHERE NOT (event_type = 'standby' AND direction IS NOT NULL)
UNION ALL
SELECT event_id, event_type, source, source_rank, page_id, psid, stream_seq, applied_at
FROM applied_other_events;
