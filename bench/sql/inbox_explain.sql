-- The inbox list statement under EXPLAIN ANALYZE (docs/benchmarks.md, "Inbox queries").
PREPARE list(uuid, text, text, text, bool, text, int8, text, text, int8) AS
SELECT c.page_id, c.psid, c.status, c.last_message_at, c.last_message_text, c.message_count, c.unread_count, c.platform, c.customer_name, c.last_in_ms, c.last_message_ms, p.owner_user_id
FROM conversations c JOIN pages p ON p.page_id = c.page_id
WHERE c.last_message_ms IS NOT NULL
  AND ($1::uuid IS NULL OR p.owner_user_id = $1)
  AND ($2::text IS NULL OR c.page_id = $2)
  AND ($3::text IS NULL OR c.status = $3)
  AND ($4::text IS NULL OR c.platform = $4)
  AND (NOT $5 OR c.unread_count > 0)
  AND ($6::text IS NULL
       OR (c.page_id, c.psid) IN (SELECT n.page_id, n.psid FROM conversations n WHERE n.customer_name ILIKE $6)
       OR (c.page_id, c.psid) IN (SELECT e.page_id, e.psid FROM conversation_events e
                                  WHERE e.direction IS NOT NULL AND e.text ILIKE $6)
       OR (c.page_id, c.psid) IN (SELECT x.page_id, x.psid FROM message_edits x
                                  WHERE x.text ILIKE $6))
  AND ($7::int8 IS NULL OR (c.last_message_ms, c.page_id, c.psid) < ($7, $8, $9))
ORDER BY c.last_message_ms DESC, c.page_id DESC, c.psid DESC
LIMIT $10;
SET plan_cache_mode = force_custom_plan;
\echo === q matching a name
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE list(NULL, NULL, NULL, NULL, false, '%customer 1a2b%', NULL, NULL, NULL, 51);
\echo === q matching one message text
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE list(NULL, NULL, NULL, NULL, false, '%of conversation 4242 %', NULL, NULL, NULL, 51);
\echo === q matching many
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE list(NULL, NULL, NULL, NULL, false, '%message 3 %', NULL, NULL, NULL, 51);
\echo === q on one page
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE list(NULL, 'page3', NULL, NULL, false, '%of conversation 4243 %', NULL, NULL, NULL, 51);
