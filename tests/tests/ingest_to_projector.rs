//! End to end: a signed webhook delivery through ingest, then the projector: every
//! event type lands in Postgres and in the files (contract §2–§4).

mod common;

use common::{Pipeline, walk};
use serde_json::{Value, json};

const PAGE: &str = "424242";
const PSID: &str = "999001";
const T: i64 = 1_763_700_000_000;

fn delivery() -> Value {
    let from_customer = |extra: Value| {
        let mut item = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE}});
        item.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        item
    };
    json!({"object": "page", "entry": [
        {"id": PAGE, "time": T, "messaging": [
            from_customer(json!({"timestamp": T + 1, "message": {"mid": "m_e2e_1", "text": "Hello"}})),
            {"sender": {"id": PAGE}, "recipient": {"id": PSID}, "timestamp": T + 2,
             "message": {"mid": "m_e2e_2", "text": "Hi, how can we help?", "is_echo": true}},
            from_customer(json!({"timestamp": T + 3, "message_edit": {"mid": "m_e2e_1", "text": "Hello!", "num_edit": 1}})),
            from_customer(json!({"timestamp": T + 4, "reaction": {"mid": "m_e2e_2", "action": "react", "reaction": "love", "emoji": "\u{2764}"}})),
            from_customer(json!({"timestamp": T + 5, "postback": {"title": "Start", "payload": "GO"}})),
            from_customer(json!({"timestamp": T + 6, "delivery": {"mids": ["m_e2e_2"], "watermark": T + 2}})),
            from_customer(json!({"timestamp": T + 7, "read": {"watermark": T + 2}})),
            from_customer(json!({"timestamp": T + 8, "optin": {"ref": "newsletter"}})),
            from_customer(json!({"timestamp": T + 9, "referral": {"ref": "ad_7", "source": "ADS", "type": "OPEN_THREAD"}})),
            {"sender": {"id": "../../etc"}, "recipient": {"id": PAGE}, "timestamp": T + 10,
             "message": {"mid": "m_e2e_evil", "text": "escape"}}
        ]},
        {"id": PAGE, "time": T, "standby": [
            from_customer(json!({"timestamp": T + 11, "message": {"mid": "m_e2e_3", "text": "via another app"}}))
        ]},
        {"id": PAGE, "time": T + 12, "changes": [{"field": "name", "value": "E2E Shop"}]}
    ]})
}

#[tokio::test]
async fn a_signed_delivery_of_every_type_reaches_the_database_and_the_files() {
    // Arrange
    let p = Pipeline::start().await;
    let body = serde_json::to_vec(&delivery()).unwrap();

    // Act
    assert_eq!(p.post_signed(body).await, 200);
    let report = p.drain().await;
    let (db, dir) = (&p.db, &p.dir);

    // Assert: the database
    let client = db.client().await;
    let types: Vec<String> = client
        .query(
            "SELECT event_type FROM applied_events ORDER BY event_type",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(report.messages, 12, "{types:?}");
    assert_eq!(report.dead_letters, 0);
    assert_eq!(db.count("SELECT count(*) FROM applied_events").await, 12);
    assert_eq!(
        db.count("SELECT count(*) FROM applied_events WHERE event_type = 'invalid'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM messages WHERE source = 'webhook'")
            .await,
        3
    );
    assert_eq!(
        db.count("SELECT count(*) FROM message_edits WHERE text = 'Hello!'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM reactions WHERE reaction = 'love'")
            .await,
        1
    );
    assert_eq!(db.count("SELECT read_watermark FROM receipts").await, T + 2);
    assert_eq!(
        db.count("SELECT count(*) FROM conversations WHERE message_count = 3 AND status = 'open'")
            .await,
        1
    );

    // Assert: the files
    let conv = dir
        .path()
        .join(format!("facebook/{PAGE}/conversations/{PSID}.json"));
    let items: Vec<Value> = serde_json::from_slice(&std::fs::read(conv).unwrap()).unwrap();
    let stamps: Vec<i64> = items
        .iter()
        .map(|i| i["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(
        stamps,
        vec![T + 1, T + 2, T + 3, T + 4, T + 5, T + 8, T + 9, T + 11]
    );
    assert_eq!(items[0]["message"]["text"], "Hello");
    let page: Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join(format!("facebook/{PAGE}/page_metadata.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(page["data"][0]["name"], "E2E Shop");
    let all: Vec<_> = walk(dir.path());
    assert_eq!(
        all.len(),
        2,
        "only the page and the valid conversation have files: {all:?}"
    );
}
