use pagesync_schema::{EventType, Source};
use serde_json::json;

use crate::support::{TestProjector, echo, event, message, own_metrics, status};

const PAGE: &str = "101";
const PSID: &str = "u1";
const T: i64 = 1_700_000_000_000;

#[tokio::test]
async fn every_event_type_is_applied_to_the_tables_and_the_files() {
    // Arrange
    let p = TestProjector::new().await;
    let item = |ty: EventType, id: &str, ts: i64, data: serde_json::Value| {
        event(ty, Source::Ingest, id, PAGE, Some(PSID), ts, data)
    };
    let events = vec![
        message(Source::Ingest, PAGE, PSID, "m1", T + 1, "Hello"),
        echo(PAGE, PSID, "m2", T + 2, "Hi there"),
        item(
            EventType::MessageEdit,
            "edit:1",
            T + 3,
            json!({"timestamp": T + 3, "message_edit": {"mid": "m1", "text": "Hello!", "num_edit": 1}}),
        ),
        item(
            EventType::Reaction,
            "reaction:1",
            T + 4,
            json!({"timestamp": T + 4, "reaction": {"mid": "m2", "action": "react", "reaction": "love", "emoji": "❤"}}),
        ),
        item(
            EventType::Postback,
            "postback:1",
            T + 5,
            json!({"timestamp": T + 5, "postback": {"title": "Start", "payload": "GET_STARTED"}}),
        ),
        item(
            EventType::Delivery,
            &format!("delivery:{PAGE}:{PSID}:{}", T + 2),
            T + 6,
            json!({"delivery": {"watermark": T + 2}}),
        ),
        item(
            EventType::Read,
            &format!("read:{PAGE}:{PSID}:{}", T + 2),
            T + 7,
            json!({"read": {"watermark": T + 2}}),
        ),
        item(
            EventType::Optin,
            "optin:1",
            T + 8,
            json!({"timestamp": T + 8, "optin": {"ref": "x"}}),
        ),
        item(
            EventType::Referral,
            "referral:1",
            T + 9,
            json!({"timestamp": T + 9, "referral": {"ref": "ad"}}),
        ),
        item(
            EventType::Standby,
            "standby:1",
            T + 10,
            json!({"timestamp": T + 10, "message": {"mid": "m3", "text": "via inbox app"}}),
        ),
        item(
            EventType::Standby,
            "standby:2",
            T + 11,
            json!({"timestamp": T + 11, "read": {"watermark": T}}),
        ),
        status(PAGE, PSID, false, T + 12),
        event(
            EventType::PageSnapshot,
            Source::Poller,
            &format!("snapshot:{PAGE}:{T}"),
            PAGE,
            None,
            T,
            json!({"id": PAGE, "name": "Shop", "category": "Retail", "access_token": "never"}),
        ),
        event(
            EventType::PageChange,
            Source::Ingest,
            "change:101:name:x",
            PAGE,
            None,
            T + 20,
            json!({"field": "name", "value": "Shop & Co"}),
        ),
        event(
            EventType::Unknown,
            Source::Ingest,
            "unknown:1",
            PAGE,
            None,
            T,
            json!({"weird": true}),
        ),
    ];
    p.publish(&events).await;

    // Act
    let report = p.drain().await;

    // Assert
    assert_eq!(report.messages, events.len() as u64);
    assert_eq!(report.dead_letters, 0);
    assert_eq!(
        p.count("SELECT count(*) FROM applied_events").await,
        events.len() as i64
    );
    assert_eq!(p.count("SELECT count(*) FROM messages").await, 3);
    assert_eq!(
        p.count("SELECT count(*) FROM messages WHERE direction = 'out' AND mid = 'm2'")
            .await,
        1
    );
    assert_eq!(
        p.count("SELECT count(*) FROM message_edits WHERE mid = 'm1' AND text = 'Hello!'")
            .await,
        1
    );
    assert_eq!(
        p.count("SELECT count(*) FROM reactions WHERE mid = 'm2' AND reaction = 'love'")
            .await,
        1
    );
    assert_eq!(
        p.count(&format!(
            "SELECT read_watermark FROM receipts WHERE psid = '{PSID}'"
        ))
        .await,
        T + 2
    );
    assert_eq!(
        p.count(&format!(
            "SELECT delivery_watermark FROM receipts WHERE psid = '{PSID}'"
        ))
        .await,
        T + 2
    );
    assert_eq!(
        p.count("SELECT count(*) FROM conversations WHERE status = 'closed' AND message_count = 3")
            .await,
        1
    );
    let file = p.conversation_file(PAGE, PSID).expect("conversation file");
    let mids: Vec<_> = file
        .iter()
        .map(|d| {
            d.pointer("/message/mid")
                .or(d.pointer("/message_edit/mid"))
                .cloned()
                .unwrap_or(json!(null))
        })
        .collect();
    assert_eq!(file.len(), 8, "{file:#?}");
    assert_eq!(mids[0], json!("m1"));
    assert_eq!(mids[1], json!("m2"));
    assert_eq!(file[7].pointer("/message/mid"), Some(&json!("m3")));
    assert!(
        file.iter()
            .all(|d| d.get("delivery").is_none() && d.get("read").is_none())
    );
    let page = p.page_file(PAGE).expect("page file");
    assert_eq!(
        page,
        json!({"data": [{"id": PAGE, "name": "Shop & Co", "category": "Retail"}]})
    );
}

#[tokio::test]
async fn an_incoming_message_reopens_a_closed_conversation() {
    let p = TestProjector::new().await;
    p.publish(&[
        message(Source::Ingest, PAGE, PSID, "m1", T, "one"),
        status(PAGE, PSID, false, T + 10),
    ])
    .await;
    p.drain().await;
    assert_eq!(
        p.count("SELECT count(*) FROM conversations WHERE status = 'closed'")
            .await,
        1
    );

    p.publish(&[message(Source::Ingest, PAGE, PSID, "m2", T + 20, "two")])
        .await;
    p.drain().await;

    assert_eq!(
        p.count("SELECT count(*) FROM conversations WHERE status = 'open' AND unread_count = 2")
            .await,
        1
    );
}

#[tokio::test]
async fn a_webhook_copy_replaces_a_poll_copy_and_later_copies_are_skipped() {
    let p = TestProjector::new().await;
    p.publish(&[message(Source::Poller, PAGE, PSID, "m1", T, "from poll")])
        .await;
    p.drain().await;
    assert_eq!(
        p.count("SELECT count(*) FROM messages WHERE source = 'poll'")
            .await,
        1
    );

    p.publish(&[message(Source::Ingest, PAGE, PSID, "m1", T, "from webhook")])
        .await;
    p.publish_again(&[message(Source::Poller, PAGE, PSID, "m1", T, "from poll")])
        .await;
    p.drain().await;

    assert_eq!(
        p.count("SELECT count(*) FROM messages WHERE source = 'webhook' AND text = 'from webhook'")
            .await,
        1
    );
    assert_eq!(
        p.count("SELECT count(*) FROM applied_events WHERE source = 'pagesync/ingest'")
            .await,
        1
    );
    let file = p.conversation_file(PAGE, PSID).unwrap();
    assert_eq!(file.len(), 1);
    assert_eq!(
        file[0].pointer("/message/text"),
        Some(&json!("from webhook"))
    );
}

#[tokio::test]
async fn files_move_when_a_page_gains_an_owner() {
    let p = TestProjector::new().await;
    p.publish(&[message(Source::Ingest, PAGE, PSID, "m1", T, "hi")])
        .await;
    p.drain().await;
    assert!(p.conversation_file(PAGE, PSID).is_some());
    let owner = uuid::Uuid::new_v4();
    p.db.client()
        .await
        .execute(
            "UPDATE pages SET owner_user_id = $1 WHERE page_id = $2",
            &[&owner, &PAGE],
        )
        .await
        .unwrap();

    p.publish(&[message(Source::Ingest, PAGE, PSID, "m2", T + 1, "again")])
        .await;
    p.drain().await;

    let moved = p.data_dir().join(format!(
        "users/{owner}/facebook/{PAGE}/conversations/{PSID}.json"
    ));
    let items: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(moved).unwrap()).unwrap();
    assert_eq!(items.len(), 2);
    assert!(!p.data_dir().join("facebook").join(PAGE).exists());
}

#[tokio::test]
async fn the_newest_webhook_of_a_connected_page_is_recorded_whatever_the_order() {
    // Arrange: page 101 is connected; 102 is not.
    let p = TestProjector::new().await;
    let connected = p
        .count("WITH x AS (INSERT INTO integrations (page_id) VALUES ('101') RETURNING 1) SELECT count(*) FROM x")
        .await;
    assert_eq!(connected, 1);

    // Act: ingest events out of order over two batches, a poller copy newer than all.
    p.publish(&[message(Source::Ingest, PAGE, PSID, "w2", T + 20, "late")])
        .await;
    p.drain().await;
    p.publish(&[
        message(Source::Ingest, PAGE, PSID, "w1", T + 10, "early"),
        message(Source::Poller, PAGE, PSID, "w3", T + 90, "polled"),
        message(Source::Ingest, "102", PSID, "w4", T + 99, "other page"),
    ])
    .await;
    p.drain().await;

    // Assert: the receivedat (event time + 5 ms) of the newest ingest event of the page.
    let at = p
        .count("SELECT (extract(epoch FROM last_webhook_at) * 1000)::int8 FROM integrations WHERE page_id = '101'")
        .await;
    assert_eq!(at, T + 25);
    assert_eq!(p.count("SELECT count(*) FROM integrations").await, 1);
}

/// A `standby` item (our app is a secondary receiver) and the poller's copy of the
/// same message have different event ids but one mid: one message, the webhook's.
#[tokio::test]
async fn a_standby_message_and_its_poll_copy_are_one_message_in_either_order() {
    let standby = event(
        EventType::Standby,
        Source::Ingest,
        "standby:abc",
        PAGE,
        Some(PSID),
        T,
        json!({"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": T,
               "message": {"mid": "m1", "text": "via standby"}}),
    );
    let poll = message(Source::Poller, PAGE, PSID, "m1", T, "via poll");
    let mut outcomes = Vec::new();
    for order in [[&standby, &poll], [&poll, &standby]] {
        // Arrange
        let p = TestProjector::new().await;

        // Act
        for e in order {
            p.publish(std::slice::from_ref(e)).await;
            p.drain().await;
        }

        // Assert
        assert_eq!(
            p.count("SELECT count(*) FROM messages WHERE mid = 'm1' AND source = 'webhook' AND text = 'via standby'")
                .await,
            1
        );
        assert_eq!(p.count("SELECT count(*) FROM messages").await, 1);
        assert_eq!(
            p.count("SELECT count(*) FROM conversations WHERE message_count = 1 AND last_message_text = 'via standby'")
                .await,
            1
        );
        assert_eq!(
            p.count("SELECT count(*) FROM applied_events WHERE event_id = 'standby:abc'")
                .await,
            1
        );
        let file = p.conversation_file(PAGE, PSID).unwrap();
        assert_eq!(file.len(), 1, "one item per message: {file:?}");
        assert_eq!(
            file[0].pointer("/message/text"),
            Some(&json!("via standby"))
        );
        outcomes.push((p.rows().await, crate::support::tree(p.data_dir())));
    }
    assert_eq!(outcomes[0].0, outcomes[1].0, "rows differ by arrival order");
    assert_eq!(
        outcomes[0].1, outcomes[1].1,
        "files differ by arrival order"
    );
}

/// A better copy of a message filed under another customer moves it: the first
/// conversation's summary and file lose it.
#[tokio::test]
async fn a_better_copy_under_another_conversation_moves_the_message() {
    // Arrange
    let p = TestProjector::new().await;
    p.publish(&[
        message(Source::Poller, PAGE, "u1", "m1", T, "misfiled"),
        message(Source::Poller, PAGE, "u1", "m0", T - 1, "stays"),
        message(Source::Poller, PAGE, "u3", "m3", T, "only one"),
    ])
    .await;
    p.drain().await;
    assert_eq!(p.conversation_file(PAGE, "u1").unwrap().len(), 2);

    // Act
    p.publish(&[
        message(Source::Ingest, PAGE, "u2", "m1", T, "right place"),
        message(Source::Ingest, PAGE, "u4", "m3", T, "moved"),
    ])
    .await;
    p.drain().await;

    // Assert
    assert_eq!(
        p.count("SELECT count(*) FROM conversations WHERE psid = 'u1' AND message_count = 1 AND last_message_text = 'stays'")
            .await,
        1
    );
    assert_eq!(
        p.count(
            "SELECT count(*) FROM conversations WHERE psid IN ('u2', 'u4') AND message_count = 1"
        )
        .await,
        2
    );
    assert_eq!(
        p.count("SELECT count(*) FROM conversations WHERE psid = 'u3' AND message_count = 0 AND last_message_at IS NULL")
            .await,
        1
    );
    let u1 = p.conversation_file(PAGE, "u1").unwrap();
    assert_eq!(u1.len(), 1);
    assert_eq!(u1[0].pointer("/message/mid"), Some(&json!("m0")));
    assert_eq!(p.conversation_file(PAGE, "u2").unwrap().len(), 1);
    assert!(
        p.conversation_file(PAGE, "u3").is_none(),
        "a conversation left without items keeps no file"
    );
}

/// Operators see how long the file step takes and how many files it writes.
#[tokio::test]
async fn file_writes_are_counted_and_timed() {
    let (_own, metrics) = own_metrics();
    let metric = |name: &str| -> f64 {
        metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let p = TestProjector::new().await;
    p.publish(&[
        message(Source::Ingest, PAGE, "a", "m1", T, "one"),
        message(Source::Ingest, PAGE, "b", "m2", T, "two"),
    ])
    .await;

    p.drain().await;

    assert_eq!(metric("pagesync_projector_file_writes_total"), 2.0);
    assert!(metric("pagesync_projector_files_duration_seconds_count") >= 1.0);
}
