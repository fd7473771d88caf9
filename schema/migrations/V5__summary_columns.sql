-- The projector folds each batch into the conversation summaries instead of
-- recomputing them (docs/projection.md); these columns hold what folding compares:
-- the newest message time (ms), the newest reply time (ms), and the tie-breaker
-- (event id or mid) of the event that set the status.
ALTER TABLE conversations
    ADD COLUMN last_message_ms bigint,
    ADD COLUMN last_out_ms bigint,
    ADD COLUMN status_tie text;

UPDATE conversations c SET
    last_message_ms = (SELECT max(m.timestamp_ms) FROM messages m
                       WHERE m.page_id = c.page_id AND m.psid = c.psid),
    last_out_ms = (SELECT max(m.timestamp_ms) FROM messages m
                   WHERE m.page_id = c.page_id AND m.psid = c.psid AND m.direction = 'out'),
    status_tie = (SELECT x.tie FROM (
                      SELECT s.at_ms, s.event_id AS tie FROM status_changes s
                      WHERE s.page_id = c.page_id AND s.psid = c.psid
                      UNION ALL
                      SELECT m.timestamp_ms, m.mid FROM messages m
                      WHERE m.page_id = c.page_id AND m.psid = c.psid AND m.direction = 'in'
                  ) x ORDER BY x.at_ms DESC, x.tie DESC LIMIT 1);
