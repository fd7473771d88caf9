//! What the projector stores for the inbox API (V9): names, last customer message,
//! app ids, reactions' side, unread after a read receipt, and the change feed.

use pagesync_schema::{EventType, Source};
use serde_json::json;

use crate::support::{TestProjector, echo, event, message};

const T: i64 = 1_700_000_000_000;
const PAGE: &str = "101";

fn profile(psid: &str, name: &str, at: i64) -> pagesync_schema::Event {
    let page = pagesync_schema::PageId::parse(PAGE).unwrap();
    let customer = pagesync_schema::Psid::parse(psid).unwrap();
    let id = pagesync_schema::event_id::for_profile(&page, &customer, name);
    event(
        EventType::CustomerProfile,
        Source::Poller,
        id.as_str(),
        PAGE,
        Some(psid),
        at,
        json!({"psid": psid, "name": name}),
    )
}

fn receipt(kind: EventType, psid: &str, watermark: i64) -> pagesync_schema::Event {
    let key = kind.as_str();
    event(
        kind,
        Source::Ingest,
        &format!("{key}:{PAGE}:{psid}:{watermark}"),
        PAGE,
        Some(psid),
        watermark,
        json!({"sender": {"id": psid}, "recipient": {"id": PAGE}, key: {"watermark": watermark}}),
    )
}

fn reaction(id: &str, by: &str, mid: &str, action: &str, ts: i64) -> pagesync_schema::Event {
    event(
        EventType::Reaction,
        Source::Ingest,
        id,
        PAGE,
        Some("u1"),
        ts,
        json!({"sender": {"id": by}, "recipient": {"id": PAGE}, "timestamp": ts,
               "reaction": {"mid": mid, "action": action, "reaction": "love", "emoji": "\u{2764}"}}),
    )
}

fn conversation_history() -> Vec<pagesync_schema::Event> {
    let mut app_echo = echo(PAGE, "u1", "m2", T + 10, "hello back");
    app_echo.data = serde_json::value::to_raw_value(&json!({
        "sender": {"id": PAGE}, "recipient": {"id": "u1"}, "timestamp": T + 10,
        "message": {"mid": "m2", "text": "hello back", "is_echo": true, "app_id": 263902037430900_i64}
    }))
    .unwrap();
    vec![
        message(Source::Ingest, PAGE, "u1", "m1", T, "hello"),
        app_echo,
        message(Source::Ingest, PAGE, "u1", "m3", T + 20, "one"),
        message(Source::Ingest, PAGE, "u1", "m4", T + 30, "two"),
        reaction("r1", "u1", "m2", "react", T + 40),
        reaction("r2", PAGE, "m3", "react", T + 41),
        receipt(EventType::Read, "u1", T + 25),
        profile("u1", "Ada Old", T + 1),
        profile("u1", "Ada Lovelace", T + 2),
    ]
}

#[tokio::test]
async fn the_inbox_columns_are_projected_and_a_rebuild_gives_the_same_rows() {
    // Arrange: the newer name published first, so order cannot decide.
    let p = TestProjector::new().await;
    let mut events = conversation_history();
    events.reverse();
    p.publish(&events).await;

    // Act
    p.drain().await;

    // Assert
    assert_eq!(
        p.count(
            "SELECT count(*) FROM conversations WHERE customer_name = 'Ada Lovelace'
             AND last_in_ms = 1700000000030 AND unread_count = 1"
        )
        .await,
        1,
        "newest name, last customer message, one unread after the read watermark"
    );
    assert_eq!(
        p.count("SELECT count(*) FROM conversation_events WHERE item_id = 'm2' AND app_id = '263902037430900'")
            .await,
        1
    );
    assert_eq!(
        p.count("SELECT count(*) FROM reactions WHERE (event_id, by_page) IN (('r1', false), ('r2', true))")
            .await,
        2
    );
    assert!(
        p.count("SELECT count(*) FROM conversation_changes WHERE page_id = '101' AND psid = 'u1'")
            .await
            >= 1
    );
    let rows = p.rows().await;
    p.rebuild().await;
    assert_eq!(p.rows().await, rows);
}

#[tokio::test]
async fn a_read_receipt_after_the_messages_clears_unread_and_a_new_message_counts_again() {
    // Arrange
    let p = TestProjector::new().await;
    p.publish(&[
        message(Source::Ingest, PAGE, "u2", "n1", T, "a"),
        message(Source::Ingest, PAGE, "u2", "n2", T + 1, "b"),
    ])
    .await;
    p.drain().await;
    let unread = "SELECT unread_count::int8 FROM conversations WHERE psid = 'u2'";
    assert_eq!(p.count(unread).await, 2);

    // Act
    p.publish(&[receipt(EventType::Read, "u2", T + 5)]).await;
    p.drain().await;
    let after_read = p.count(unread).await;
    p.publish(&[message(Source::Ingest, PAGE, "u2", "n3", T + 9, "c")])
        .await;
    p.drain().await;

    // Assert
    assert_eq!(after_read, 0);
    assert_eq!(p.count(unread).await, 1);
}

#[tokio::test]
async fn a_batch_that_changes_nothing_records_no_change() {
    // Arrange
    let p = TestProjector::new().await;
    p.publish(&[message(Source::Ingest, PAGE, "u3", "k1", T, "a")])
        .await;
    p.drain().await;
    let before = p.count("SELECT count(*) FROM conversation_changes").await;

    // Act: the same message again, as a retried delivery after the duplicate window.
    p.publish_again(&[message(Source::Ingest, PAGE, "u3", "k1", T, "a")])
        .await;
    p.drain().await;

    // Assert
    assert_eq!(before, 1);
    assert_eq!(
        p.count("SELECT count(*) FROM conversation_changes").await,
        1
    );
}

#[tokio::test]
async fn change_rows_older_than_a_day_are_pruned_by_the_next_batch() {
    // Arrange: a change recorded 25 hours ago.
    let p = TestProjector::new().await;
    p.db.client()
        .await
        .batch_execute(
            "INSERT INTO conversation_changes (page_id, psid, changed_at)
             VALUES ('101', 'old', now() - interval '25 hours')",
        )
        .await
        .unwrap();

    // Act
    p.publish(&[message(Source::Ingest, PAGE, "u4", "p1", T, "a")])
        .await;
    p.drain().await;

    // Assert
    assert_eq!(
        p.count("SELECT count(*) FROM conversation_changes WHERE psid = 'old'")
            .await,
        0
    );
    assert_eq!(
        p.count("SELECT count(*) FROM conversation_changes WHERE psid = 'u4'")
            .await,
        1
    );
}
