//! End to end: a signed webhook delivery through ingest, then the projector: every
//! event type lands in Postgres and in the files (contract §2–§4).

use pagesync_ingest::signature::AppSecret;
use pagesync_runtime::CancellationToken;
use pagesync_testkit::{TestDb, TestNats};
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
    let nats = TestNats::new().await;
    let db = TestDb::new().await;
    let dir = pagesync_testkit::temp_dir();
    let mut ingest_cfg: pagesync_ingest::Config = pagesync_runtime::config::parse_from([
        "ingest",
        "--ingest-addr",
        "127.0.0.1:0",
        "--facebook-app-secret",
        "e2e-secret",
        "--facebook-verify-token",
        "e2e-verify",
    ])
    .unwrap();
    ingest_cfg.nats = nats.config();
    let signer = AppSecret::new(&ingest_cfg.facebook_app_secret);
    let ingest = pagesync_ingest::App::build(ingest_cfg).await.unwrap();
    let url = format!("http://{}/facebook/webhook", ingest.local_addr());
    let stop = CancellationToken::new();
    let server = tokio::spawn(ingest.run_until_stopped(stop.clone()));
    let body = serde_json::to_vec(&delivery()).unwrap();

    // Act
    let answer = reqwest::Client::new()
        .post(&url)
        .header("X-Hub-Signature-256", signer.sign(&body))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let mut cfg: pagesync_projector::Config =
        pagesync_runtime::config::parse_from(["projector"]).unwrap();
    cfg.nats = nats.config();
    cfg.database = db.config();
    cfg.data_dir = dir.path().to_owned();
    cfg.projector_addr = "127.0.0.1:0".parse().unwrap();
    cfg.projector_fetch_expiry = std::time::Duration::from_millis(200);
    let report = pagesync_projector::App::build(cfg)
        .await
        .unwrap()
        .drain(CancellationToken::new())
        .await
        .unwrap();
    stop.cancel();
    server.await.unwrap().unwrap();

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

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}
