-- Seeds 10 pages, 100,000 conversations and 1,000,000 messages (docs/benchmarks.md, "Inbox queries").
-- Run on a database migrated by `projector migrate`: psql -d <db> -f bench/sql/inbox_seed.sql
INSERT INTO pages (page_id, owner_user_id)
SELECT 'page' || p, NULL FROM generate_series(0, 9) p;
INSERT INTO conversations (page_id, psid, status, message_count, unread_count, last_message_ms, last_message_at,
                           last_message_text, last_message_mid, last_in_ms, last_out_ms, customer_name)
SELECT 'page' || (c % 10), 'c' || c, CASE WHEN c % 7 = 0 THEN 'closed' ELSE 'open' END, 10, c % 3,
       1700000000000 + c * 1000 + 9, to_timestamp((1700000000000 + c * 1000 + 9) / 1000.0),
       'message 9 of conversation ' || c, 'm' || c || '_9', 1700000000000 + c * 1000 + 8,
       1700000000000 + c * 1000 + 9, 'Customer ' || md5(c::text)
FROM generate_series(0, 99999) c;
INSERT INTO conversation_events (item_id, page_id, psid, event_type, source, source_rank, timestamp_ms,
                                 in_file, data, stream_seq, direction, text)
SELECT 'm' || c || '_' || i, 'page' || (c % 10), 'c' || c,
       CASE WHEN i % 2 = 0 THEN 'message' ELSE 'message_echo' END, 'pagesync/ingest', 0,
       1700000000000 + c * 1000 + i, true, '{}', c * 10 + i,
       CASE WHEN i % 2 = 0 THEN 'in' ELSE 'out' END,
       'message ' || i || ' of conversation ' || c || ' ' || md5((c * 10 + i)::text)
FROM generate_series(0, 99999) c, generate_series(0, 9) i;
INSERT INTO receipts (page_id, psid, delivery_watermark, read_watermark)
SELECT 'page' || (c % 10), 'c' || c, 1700000000000 + c * 1000 + 9, 1700000000000 + c * 1000 + 5
FROM generate_series(0, 99999) c;
INSERT INTO reactions (event_id, page_id, psid, mid, action, reaction, emoji, timestamp_ms, source_rank, by_page)
SELECT 'r' || c, 'page' || (c % 10), 'c' || c, 'm' || c || '_1', 'react', 'love', 'x', 1700000000000 + c * 1000 + 9, 0, false
FROM generate_series(0, 99999) c;
ANALYZE;
