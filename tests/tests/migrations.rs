//! Migrations that convert data: a database holding rows of the previous shape
//! comes out of the migration as if the projector had written the new shape.

use pagesync_schema::migrations;
use pagesync_testkit::TestDb;

/// V6 folds `messages` and the messaging part of `applied_events` into
/// `conversation_events`; the old names remain as views with the same rows.
#[tokio::test]
async fn v6_keeps_every_message_and_applied_id() {
    // Arrange: a V5 projection with a message, an echo, a receipt, a page event,
    // and a standby carrying a message that also arrived by poll (the standby won).
    let db = TestDb::empty().await;
    let pool = pagesync_runtime::connect::pool(&db.config()).expect("pool");
    migrations::run_until(&pool, 5)
        .await
        .expect("migrate to V5");
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO pages (page_id) VALUES ('p');
             INSERT INTO conversations (page_id, psid) VALUES ('p', 'u');
             INSERT INTO applied_events (event_id, event_type, source, source_rank, page_id, psid, stream_seq) VALUES
               ('m1', 'message', 'pagesync/ingest', 0, 'p', 'u', 1),
               ('m2', 'message_echo', 'pagesync/ingest', 0, 'p', 'u', 2),
               ('read:p:u:5', 'read', 'pagesync/ingest', 0, 'p', 'u', 3),
               ('change:p:name:1:x', 'page_change', 'pagesync/ingest', 0, 'p', NULL, 4),
               ('m3', 'message', 'pagesync/poller', 2, 'p', 'u', 5),
               ('standby:s', 'standby', 'pagesync/ingest', 0, 'p', 'u', 6);
             INSERT INTO conversation_events (event_id, page_id, psid, event_type, source, source_rank, timestamp_ms, in_file, data) VALUES
               ('m1', 'p', 'u', 'message', 'pagesync/ingest', 0, 1, true, '{\"message\":{\"mid\":\"m1\"}}'),
               ('m2', 'p', 'u', 'message_echo', 'pagesync/ingest', 0, 2, true, '{\"message\":{\"mid\":\"m2\"}}'),
               ('read:p:u:5', 'p', 'u', 'read', 'pagesync/ingest', 0, 5, false, '{\"read\":{}}'),
               ('m3', 'p', 'u', 'message', 'pagesync/poller', 2, 3, true, '{\"message\":{\"mid\":\"m3\",\"text\":\"poll\"}}'),
               ('standby:s', 'p', 'u', 'standby', 'pagesync/ingest', 0, 3, true, '{\"message\":{\"mid\":\"m3\",\"text\":\"standby\"}}');
             INSERT INTO messages (mid, event_id, page_id, psid, direction, text, timestamp_ms, sent_at, source, source_rank) VALUES
               ('m1', 'm1', 'p', 'u', 'in', 'hello', 1, now(), 'webhook', 0),
               ('m2', 'm2', 'p', 'u', 'out', 'hi', 2, now(), 'webhook', 0),
               ('m3', 'standby:s', 'p', 'u', 'in', 'standby', 3, now(), 'webhook', 0);",
        )
        .await
        .expect("V5 rows");

    // Act
    migrations::run(&pool).await.expect("migrate to the latest");

    // Assert
    let rows = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query(sql, &[])
                .await
                .expect(sql)
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(
        rows("SELECT mid || ' ' || direction || ' ' || text || ' ' || source FROM messages ORDER BY mid").await,
        ["m1 in hello webhook", "m2 out hi webhook", "m3 in standby webhook"]
    );
    assert_eq!(
        rows("SELECT event_id || ' ' || stream_seq FROM applied_events ORDER BY event_id").await,
        [
            "change:p:name:1:x 4",
            "m1 1",
            "m2 2",
            "read:p:u:5 3",
            "standby:s 6"
        ]
    );
    assert_eq!(
        rows("SELECT item_id || ' ' || event_type FROM conversation_events ORDER BY item_id").await,
        [
            "m1 message",
            "m2 message_echo",
            "m3 standby",
            "read:p:u:5 read"
        ]
    );
}
