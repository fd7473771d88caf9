//! The poller against the fake Graph API, real NATS and real Postgres.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use pagesync_crypto::{EncryptionKey, OldKeys, TokenCipher};
use pagesync_fake_graph::{FakeGraph, FakeMessage, Fault, Match};
use pagesync_graph::THROTTLE_CODES;
use pagesync_poller::test_support::{self, GraphApp};
use pagesync_poller::{App, Config, PageOutcome};
use pagesync_schema::{EventType, PageId};
use pagesync_testkit::{Proxy, TestDb, TestNats};
use serde_json::{Value, json};

mod database;
mod instagram;

const PAGE: &str = "101368371725791";
const TOKEN: &str = "EAAB-page-token-Zk93xQ-s3cr3t";

struct TestApp {
    nats: TestNats,
    db: TestDb,
    fake: FakeGraph,
    app: App,
    cipher: TokenCipher,
    /// Between the poller and Postgres, with [`TestApp::spawn_behind_proxy`].
    proxy: Option<Proxy>,
}

fn config(nats: &TestNats, db: &TestDb, fake: &FakeGraph, key_b64: &str, extra: &[&str]) -> Config {
    let mut flags = vec![
        "--poll-page-call-interval",
        "0s",
        "--graph-retry-min-delay",
        "5ms",
        "--graph-throttle-pause",
        "30ms",
        "--poll-start-jitter",
        "0s",
    ];
    flags.extend_from_slice(extra);
    let base = fake.base_url();
    let graph = GraphApp::new(&base, FakeGraph::APP_ID, FakeGraph::APP_SECRET);
    test_support::config(&graph, key_b64, nats.config(), db.config(), &flags)
}

impl TestApp {
    async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    async fn spawn_with(extra: &[&str]) -> Self {
        Self::start(extra, None).await
    }

    /// The poller reaching Postgres through a proxy the test can freeze, with the
    /// statement deadline `deadline`.
    async fn spawn_behind_proxy(deadline: Duration) -> Self {
        Self::start(&[], Some(deadline)).await
    }

    async fn start(extra: &[&str], proxied_deadline: Option<Duration>) -> Self {
        pagesync_testkit::logs::capture("trace");
        let (nats, db, fake) = (
            TestNats::new().await,
            TestDb::new().await,
            FakeGraph::start().await,
        );
        fake.add_page(PAGE, "Dog Page", TOKEN);
        let (key, key_b64) = EncryptionKey::generate();
        let mut cfg = config(&nats, &db, &fake, &key_b64, extra);
        let mut proxy = None;
        if let Some(deadline) = proxied_deadline {
            proxy = Some(Proxy::in_front_of(&mut cfg.database, deadline).await);
        }
        let app = App::build(cfg).await.unwrap();
        let cipher = TokenCipher::new(key, OldKeys::default());
        let t = Self {
            nats,
            db,
            fake,
            app,
            cipher,
            proxy,
        };
        t.connect(PAGE, TOKEN).await;
        t
    }

    /// What oauth-api will do: store the page token encrypted.
    async fn connect(&self, page: &str, token: &str) {
        let client = self.db.client().await;
        test_support::store_integration(&client, &self.cipher, page, token)
            .await
            .unwrap();
    }

    async fn cycle(&self) -> pagesync_poller::CycleReport {
        self.app.run_cycle(None).await.unwrap()
    }

    async fn integration(&self, column: &str) -> Option<String> {
        let row = self
            .db
            .client()
            .await
            .query_one(
                &format!("SELECT {column}::text FROM integrations WHERE page_id = $1"),
                &[&PAGE],
            )
            .await
            .unwrap();
        row.get(0)
    }

    async fn checkpoint(&self) -> Option<DateTime<Utc>> {
        self.db
            .client()
            .await
            .query_opt(
                "SELECT newest_updated_time FROM poll_checkpoints WHERE page_id = $1",
                &[&PAGE],
            )
            .await
            .unwrap()
            .and_then(|r| r.get(0))
    }
}

fn at(day: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 10, min, 0).unwrap()
}

/// 3 conversations of 5 messages (customer and page alternating), across 2 result
/// pages, with nested message pages of 3.
fn seed_three_conversations(fake: &FakeGraph) {
    fake.set_conversations_page_size(2);
    fake.set_nested_page_size(3);
    for c in 0..3u32 {
        let psid = format!("90{c}");
        for m in 0..5u32 {
            let id = format!("m_{c}_{m}");
            let t = at(1 + c, m);
            let msg = if m % 2 == 0 {
                FakeMessage::customer(&id, &format!("question {m}"), t)
            } else {
                FakeMessage::page(&id, &format!("answer {m}"), t)
            };
            fake.add_message(PAGE, &psid, msg);
        }
    }
}

#[tokio::test]
async fn a_backfill_publishes_every_message_in_webhook_item_shape_with_echoes_for_page_sent_ones() {
    let t = TestApp::spawn().await;
    seed_three_conversations(&t.fake);
    t.fake.add_message(
        PAGE,
        "903",
        FakeMessage::customer("m_att", "", at(5, 0))
            .with_attachment("image/png", "https://cdn/x.png"),
    );

    let report = t.cycle().await;

    assert_eq!(
        report.outcome(PAGE),
        Some(&PageOutcome::Success {
            stored: 21,
            duplicates: 0
        })
    );
    assert!(
        t.fake.count("/t_") >= 3,
        "nested message paging was followed"
    );
    let messages = t.nats.messages().await;
    assert_eq!(
        messages.len(),
        21,
        "1 snapshot + 15 messages + 1 attachment + 4 customer names"
    );
    let events = t.nats.events().await;
    let snapshot = events
        .iter()
        .find(|e| e.event_type == EventType::PageSnapshot)
        .unwrap();
    let snap: Value = serde_json::from_str(snapshot.data.get()).unwrap();
    assert_eq!(snap["name"], "Dog Page");
    assert!(
        snapshot
            .id
            .as_str()
            .starts_with(&format!("snapshot:{PAGE}:"))
    );

    let name = events
        .iter()
        .find(|e| {
            e.event_type == EventType::CustomerProfile && e.psid.as_ref().unwrap().as_str() == "901"
        })
        .expect("the customer's name from participants");
    let named: Value = serde_json::from_str(name.data.get()).unwrap();
    assert_eq!(named, json!({"psid": "901", "name": "Customer 901"}));

    let customer = events.iter().find(|e| e.id.as_str() == "m_1_0").unwrap();
    assert_eq!(customer.event_type, EventType::Message);
    assert_eq!(customer.psid.as_ref().unwrap().as_str(), "901");
    assert_eq!(customer.source.as_str(), "pagesync/poller");
    let data: Value = serde_json::from_str(customer.data.get()).unwrap();
    assert_eq!(
        data,
        json!({"sender": {"id": "901"}, "recipient": {"id": PAGE},
               "timestamp": at(2, 0).timestamp_millis(),
               "message": {"mid": "m_1_0", "text": "question 0"}})
    );
    let echo = events.iter().find(|e| e.id.as_str() == "m_1_1").unwrap();
    assert_eq!(echo.event_type, EventType::MessageEcho);
    assert_eq!(echo.psid.as_ref().unwrap().as_str(), "901");
    let data: Value = serde_json::from_str(echo.data.get()).unwrap();
    assert_eq!(data["sender"]["id"], PAGE);
    assert_eq!(data["recipient"]["id"], "901");
    assert_eq!(data["message"]["is_echo"], true);
    let att = events.iter().find(|e| e.id.as_str() == "m_att").unwrap();
    let data: Value = serde_json::from_str(att.data.get()).unwrap();
    assert_eq!(
        data["message"]["attachments"],
        json!([{"type": "image", "payload": {"url": "https://cdn/x.png"}}])
    );

    let m = messages
        .iter()
        .find(|m| m.msg_id.as_deref() == Some("pagesync/poller:m_0_0"))
        .unwrap();
    assert_eq!(m.subject, format!("{}.{PAGE}.message", t.nats.prefix));
    assert_eq!(t.checkpoint().await, Some(at(5, 0)));
    assert_eq!(
        t.integration("last_poll_outcome").await.as_deref(),
        Some("success")
    );
}

#[tokio::test]
async fn an_incremental_second_cycle_publishes_nothing_new_and_a_third_only_the_new_message() {
    let t = TestApp::spawn().await;
    seed_three_conversations(&t.fake);
    t.cycle().await;
    let after_backfill = t.nats.message_count().await;
    let calls_before = t.fake.requests().len();

    let second = t.cycle().await;

    assert_eq!(second.stored(), 0);
    assert_eq!(t.nats.message_count().await, after_backfill);
    let second_calls = t.fake.requests().len() - calls_before;
    assert!(
        second_calls <= 4,
        "page, subscribed_apps and one conversations page: {second_calls}"
    );

    t.fake.add_message(
        PAGE,
        "900",
        FakeMessage::customer("m_new", "again", at(10, 0)),
    );
    let third = t.cycle().await;
    assert_eq!(third.stored(), 1);
    assert_eq!(t.checkpoint().await, Some(at(10, 0)));
}

#[tokio::test]
async fn http_429_then_success_completes_the_page() {
    let t = TestApp::spawn().await;
    seed_three_conversations(&t.fake);
    t.fake
        .inject(Match::path("conversations"), Fault::Http(429), Some(2));

    let report = t.cycle().await;

    assert!(report.all_succeeded(), "{report:?}");
    assert_eq!(
        t.nats.message_count().await,
        19,
        "1 snapshot + 15 messages + 3 names"
    );
    let statuses: Vec<u16> = t
        .fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/conversations"))
        .map(|r| r.status)
        .collect();
    assert_eq!(&statuses[..3], &[429, 429, 200]);
}

#[tokio::test]
async fn each_throttling_code_is_backed_off_and_the_page_completes() {
    let t = TestApp::spawn().await;
    seed_three_conversations(&t.fake);
    for code in THROTTLE_CODES {
        t.fake.inject(
            Match::path("conversations"),
            Fault::Throttle {
                code,
                regain_minutes: 0,
            },
            Some(1),
        );
        let report = t.cycle().await;
        assert!(report.all_succeeded(), "code {code}: {report:?}");
    }
    let throttled = t.fake.requests().iter().filter(|r| r.status == 400).count();
    assert_eq!(throttled, THROTTLE_CODES.len());
    assert_eq!(
        t.nats.message_count().await,
        19,
        "1 snapshot + 15 messages + 3 names"
    );
}

#[tokio::test]
async fn a_throttle_longer_than_the_allowed_wait_fails_the_page_and_keeps_the_checkpoint() {
    let t = TestApp::spawn().await;
    seed_three_conversations(&t.fake);
    t.fake.inject(
        Match::path("conversations"),
        Fault::Throttle {
            code: 80001,
            regain_minutes: 30,
        },
        Some(1),
    );

    let report = t.cycle().await;

    assert_eq!(report.outcome(PAGE), Some(&PageOutcome::Throttled));
    assert_eq!(t.fake.count("conversations"), 1, "no call while throttled");
    assert_eq!(t.checkpoint().await, None);
    assert_eq!(
        t.integration("last_poll_outcome").await.as_deref(),
        Some("throttled")
    );
}

#[tokio::test]
async fn a_revoked_token_marks_the_integration_needs_reauth_without_a_retry_storm() {
    let t = TestApp::spawn().await;
    seed_three_conversations(&t.fake);
    t.fake.revoke_token(PAGE);

    let first = t.cycle().await;
    let calls = t.fake.requests().len();
    let second = t.cycle().await;
    let only_page = t
        .app
        .run_cycle(Some(&PageId::parse(PAGE).unwrap()))
        .await
        .unwrap();

    assert_eq!(first.outcome(PAGE), Some(&PageOutcome::NeedsReauth));
    assert!(!first.all_succeeded());
    assert_eq!(calls, 1, "one call, no retries");
    assert!(
        second.pages.is_empty(),
        "needs_reauth integrations are skipped"
    );
    assert!(
        !only_page.all_succeeded(),
        "--once --page fails for a page that cannot be polled"
    );
    assert_eq!(t.fake.requests().len(), 1);
    assert_eq!(
        t.integration("status").await.as_deref(),
        Some("needs_reauth")
    );
    // The codes in digits, never a Debug-formatted Option.
    assert_eq!(
        t.integration("status_reason").await.as_deref(),
        Some("Graph API code 190, subcode 460")
    );
    assert_eq!(t.checkpoint().await, None);
    assert_eq!(t.nats.message_count().await, 0);
}

#[tokio::test]
async fn an_unsubscribed_page_is_resubscribed_and_its_status_shows_it() {
    let t = TestApp::spawn().await;
    t.fake.set_subscribed(PAGE, false);

    let report = t.cycle().await;

    assert!(report.all_succeeded());
    let fields = t.fake.subscribed_fields(PAGE).expect("subscribed again");
    assert_eq!(fields.len(), 9);
    assert!(fields.iter().any(|f| f == "message_echoes"));
    assert_eq!(
        t.integration("subscription_status").await.as_deref(),
        Some("resubscribed")
    );
    assert_eq!(
        t.integration("resubscribed_count").await.as_deref(),
        Some("1")
    );

    t.cycle().await;
    assert_eq!(
        t.integration("subscription_status").await.as_deref(),
        Some("subscribed")
    );
    assert_eq!(t.fake.count("subscribed_apps"), 3, "GET, POST, GET");
}

#[tokio::test]
async fn the_page_token_never_appears_in_captured_logs() {
    let t = TestApp::spawn().await;
    seed_three_conversations(&t.fake);
    t.fake.inject(
        Match::path("conversations"),
        Fault::ServerError(500),
        Some(1),
    );
    t.fake.inject(
        Match::path("t_"),
        Fault::Throttle {
            code: 613,
            regain_minutes: 0,
        },
        Some(1),
    );

    t.cycle().await;
    t.fake.revoke_token(PAGE);
    t.cycle().await;

    // Every test of this binary logs into the same capture, and all use TOKEN.
    let logs = pagesync_testkit::logs::capture("trace").text();
    assert!(logs.contains("page polled"), "logs were captured");
    assert!(logs.contains("needs re-authentication"));
    assert!(logs.contains("Graph call"));
    assert!(!logs.contains(TOKEN), "token leaked into logs");
    assert!(!logs.contains(FakeGraph::APP_SECRET));
}

#[tokio::test]
async fn the_daemon_polls_at_start_and_serves_health_ready_and_metrics() {
    let t = TestApp::spawn().await;
    seed_three_conversations(&t.fake);
    let addr = t.app.local_addr();
    let TestApp {
        nats,
        db: _db,
        fake: _fake,
        app,
        ..
    } = t;
    let shutdown = pagesync_runtime::CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    pagesync_testkit::wait::until(Duration::from_secs(20), "first cycle published", || async {
        nats.message_count().await == 19
    })
    .await;
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    let ready = http
        .get(format!("http://{addr}/ready"))
        .send()
        .await
        .unwrap();
    // The outcome is counted once the page's poll is recorded, after its publishes.
    let metrics = pagesync_testkit::wait::until_some(
        Duration::from_secs(20),
        "the first cycle's outcome counted",
        || async {
            let url = format!("http://{addr}/metrics");
            let text = http.get(url).send().await.ok()?.text().await.ok()?;
            text.contains("pagesync_poller_pages_polled_total")
                .then_some(text)
        },
    )
    .await;
    shutdown.cancel();
    task.await.unwrap().expect("daemon stops cleanly");

    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200, "ready");
    for name in [
        "pagesync_poller_pages_polled_total",
        "pagesync_poller_graph_calls_total",
        "pagesync_poller_events_published_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
}

#[test]
fn a_missing_or_malformed_encryption_key_fails_in_one_line_without_echoing_it() {
    let base = [
        "poller",
        "--facebook-app-id",
        "1",
        "--facebook-app-secret",
        "s",
    ];
    let missing = pagesync_runtime::config::parse_from::<Config, _, _>(base)
        .unwrap_err()
        .to_string();
    assert_eq!(
        missing,
        "configuration error: missing required environment variable TOKEN_ENCRYPTION_KEY"
    );

    let mut args = base.to_vec();
    args.extend(["--token-encryption-key", "bm90LTMyLWJ5dGVz"]);
    let bad = pagesync_runtime::config::parse_from::<Config, _, _>(args)
        .unwrap_err()
        .to_string();
    assert!(bad.contains("TOKEN_ENCRYPTION_KEY"), "{bad}");
    assert!(!bad.contains("bm90LTMyLWJ5dGVz"), "{bad}");
    assert_eq!(bad.lines().count(), 1);
}

#[tokio::test]
async fn a_customer_unnamed_in_participants_is_named_by_the_profile_api_and_a_refusal_fails_nothing()
 {
    // Arrange: two customers without a name in participants; the profile API
    // refuses the second (no permission for it).
    let t = TestApp::spawn().await;
    for psid in ["905", "906"] {
        let id = format!("m_{psid}");
        t.fake
            .add_message(PAGE, psid, FakeMessage::customer(&id, "hi", at(9, 0)));
        t.fake.name_only_in_profile(PAGE, psid);
    }
    t.fake.inject(
        Match::path("/906"),
        Fault::Error {
            status: 400,
            code: 100,
            subcode: Some(2018247),
            message: "Insufficient permission to access user profile".into(),
        },
        None,
    );

    // Act
    let report = t.cycle().await;

    // Assert
    assert!(report.all_succeeded(), "{report:?}");
    let names: Vec<Value> = t
        .nats
        .events()
        .await
        .iter()
        .filter(|e| e.event_type == EventType::CustomerProfile)
        .map(|e| serde_json::from_str(e.data.get()).unwrap())
        .collect();
    assert_eq!(names, [json!({"psid": "905", "name": "Customer 905"})]);
    assert!(t.fake.count("/905") >= 1, "the profile API was asked");
}
