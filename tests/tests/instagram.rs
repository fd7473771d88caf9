//! End to end, Instagram (contract §8): signed `"object": "instagram"` deliveries
//! through the real ingest and projector into `instagram/<account>/` files, polled
//! copies converging with webhook ones, and Messenger kept apart.

mod common;

use chrono::{TimeZone, Utc};
use common::Pipeline;
use pagesync_crypto::{EncryptionKey, OldKeys, TokenCipher};
use pagesync_fake_graph::{FakeGraph, FakeMessage};
use pagesync_poller::test_support::{self, GraphApp};
use serde_json::{Value, json};

const ACCOUNT: &str = "17841405822304914";
const IGSID: &str = "6485239621563051";
const PAGE: &str = "101368371725791";
const FIXTURE: &str = include_str!("../../ingest/tests/fixtures/instagram.json");

fn file(p: &Pipeline, relative: &str) -> Vec<Value> {
    let bytes = p
        .file(relative)
        .unwrap_or_else(|| panic!("{relative} missing"));
    serde_json::from_slice(&bytes).unwrap()
}

fn ig_file() -> String {
    format!("instagram/{ACCOUNT}/conversations/{IGSID}.json")
}

#[tokio::test]
async fn every_instagram_messaging_type_reaches_the_accounts_conversation_file() {
    // Arrange
    let p = Pipeline::start().await;

    // Act
    assert_eq!(p.post_signed(FIXTURE).await, 200);
    let report = p.drain().await;

    // Assert
    assert_eq!(report.dead_letters, 0);
    let items = file(&p, &ig_file());
    let kind = |i: &Value| {
        [
            "message_edit",
            "reaction",
            "postback",
            "referral",
            "message",
        ]
        .into_iter()
        .find(|k| i.get(*k).is_some())
        .unwrap()
    };
    let kinds: Vec<&str> = items.iter().map(kind).collect();
    // Ordered by timestamp; the seen receipt is not in the file, the comments and
    // mention (unknown) are not projected.
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "message",
            "message",
            "message",
            "reaction",
            "reaction",
            "postback",
            "referral",
            "message_edit",
            "message"
        ]
    );
    assert_eq!(items[4]["message"]["is_echo"], true);
    assert_eq!(items[10]["message"]["is_deleted"], true);
    assert!(!p.dir.path().join("facebook").exists());
    let db = &p.db;
    assert_eq!(
        db.count("SELECT count(*) FROM conversations WHERE platform = 'instagram'")
            .await,
        1
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM pages WHERE page_id = '{ACCOUNT}' AND platform = 'instagram'"
        ))
        .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM messages WHERE direction = 'out'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM message_edits").await,
        1,
        "the edit is applied to its message"
    );
    assert_eq!(
        db.count("SELECT read_watermark FROM receipts").await,
        1569262492349
    );
}

#[tokio::test]
async fn an_instagram_and_a_messenger_customer_with_the_same_id_stay_apart() {
    let p = Pipeline::start().await;
    let item = |business: &str, mid: &str, text: &str| {
        json!({"sender": {"id": IGSID}, "recipient": {"id": business}, "timestamp": 1569262485349_i64,
               "message": {"mid": mid, "text": text}})
    };
    let ig = json!({"object": "instagram", "entry": [{"id": ACCOUNT, "time": 1569262486134_i64,
        "messaging": [item(ACCOUNT, "ig_mid_1", "on instagram")]}]});
    let fb = json!({"object": "page", "entry": [{"id": PAGE, "time": 1569262486134_i64,
        "messaging": [item(PAGE, "m_mid_1", "on messenger")]}]});

    for body in [ig, fb] {
        assert_eq!(p.post_signed(serde_json::to_vec(&body).unwrap()).await, 200);
    }
    p.drain().await;

    let ig = file(&p, &ig_file());
    let fb = file(&p, &format!("facebook/{PAGE}/conversations/{IGSID}.json"));
    assert_eq!(ig.len(), 1);
    assert_eq!(fb.len(), 1);
    assert_eq!(ig[0]["message"]["text"], "on instagram");
    assert_eq!(fb[0]["message"]["text"], "on messenger");
    assert_eq!(
        p.db.count("SELECT count(DISTINCT platform) FROM conversations")
            .await,
        2
    );
}

/// The page's token in the fake and in `integrations`, linked to the account.
async fn linked_page(p: &Pipeline, fake: &FakeGraph) -> String {
    const TOKEN: &str = "EAAB-instagram-e2e-token";
    fake.add_page(PAGE, "Shop", TOKEN);
    fake.link_instagram(PAGE, ACCOUNT);
    let (key, key_b64) = EncryptionKey::generate();
    let cipher = TokenCipher::new(key, OldKeys::default());
    let client = p.db.client().await;
    test_support::store_integration(&client, &cipher, PAGE, TOKEN)
        .await
        .unwrap();
    client
        .execute(
            "UPDATE integrations SET instagram_account_id = $1",
            &[&ACCOUNT],
        )
        .await
        .unwrap();
    key_b64
}

async fn poll(p: &Pipeline, fake: &FakeGraph, key_b64: &str) {
    let base = fake.base_url();
    let graph = GraphApp::new(&base, FakeGraph::APP_ID, FakeGraph::APP_SECRET);
    let flags = ["--poll-page-call-interval", "0s"];
    let cfg = test_support::config(&graph, key_b64, p.nats.config(), p.db.config(), &flags);
    let app = pagesync_poller::App::build(cfg).await.unwrap();
    assert!(app.run_cycle(None).await.unwrap().all_succeeded());
}

#[tokio::test]
async fn polled_and_webhook_copies_of_an_instagram_message_converge_and_the_webhook_wins() {
    // Arrange: the poll reads the message first, then its webhook arrives.
    let p = Pipeline::start().await;
    let fake = FakeGraph::start().await;
    let key_b64 = linked_page(&p, &fake).await;
    let sent = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
    fake.add_instagram_message(
        PAGE,
        IGSID,
        FakeMessage::customer("ig_conv_1", "hello", sent),
    );
    fake.add_instagram_message(
        PAGE,
        IGSID,
        FakeMessage::page("ig_conv_2", "hi!", sent + chrono::Duration::seconds(5)),
    );

    // Act
    poll(&p, &fake, &key_b64).await;
    p.drain().await;
    let polled = file(&p, &ig_file());
    let webhook = json!({"object": "instagram", "entry": [{"id": ACCOUNT, "time": sent.timestamp_millis(),
        "messaging": [{"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT},
                       "timestamp": sent.timestamp_millis(),
                       "message": {"mid": "ig_conv_1", "text": "hello"}}]}]});
    assert_eq!(
        p.post_signed(serde_json::to_vec(&webhook).unwrap()).await,
        200
    );
    p.drain().await;
    poll(&p, &fake, &key_b64).await;
    p.drain().await;

    // Assert: one row per message; the webhook's copy won the first.
    assert_eq!(polled.len(), 2);
    assert_eq!(polled[1]["message"]["is_echo"], true);
    assert_eq!(polled[1]["sender"]["id"], ACCOUNT);
    let rows: Vec<(String, String)> =
        p.db.pairs(&format!(
            "SELECT mid, source FROM messages WHERE page_id = '{ACCOUNT}' ORDER BY mid"
        ))
        .await;
    assert_eq!(
        rows,
        [
            ("ig_conv_1".into(), "webhook".into()),
            ("ig_conv_2".into(), "poll".into())
        ]
    );
    let items = file(&p, &ig_file());
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], webhook["entry"][0]["messaging"][0]);
}
