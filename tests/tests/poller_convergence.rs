//! Polled messages converge with webhook copies: one row, one file entry, and the
//! webhook's copy wins (contract §3).

mod common;

use chrono::{TimeZone, Utc};
use pagesync_crypto::{EncryptionKey, OldKeys, TokenCipher};
use pagesync_fake_graph::{FakeGraph, FakeMessage};
use pagesync_poller::test_support::{self, GraphApp};
use pagesync_schema::{Event, EventId, EventType, PageId, Psid, Publisher, Source};
use pagesync_testkit::{TestDb, TestNats};
use serde_json::{Value, json};

const PAGE: &str = "555000111";
const PSID: &str = "777000222";
const TOKEN: &str = "EAAB-convergence-token";

struct World {
    nats: TestNats,
    db: TestDb,
    dir: tempfile::TempDir,
    fake: FakeGraph,
    key_b64: String,
}

impl World {
    async fn new() -> Self {
        let nats = TestNats::new().await;
        nats.ensure_stream().await;
        let db = TestDb::new().await;
        let fake = FakeGraph::start().await;
        fake.add_page(PAGE, "Converge Page", TOKEN);
        let t = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
        fake.add_message(PAGE, PSID, FakeMessage::customer("m_conv_1", "hello", t));
        let (key, key_b64) = EncryptionKey::generate();
        let cipher = TokenCipher::new(key, OldKeys::default());
        test_support::store_integration(&db.client().await, &cipher, PAGE, TOKEN)
            .await
            .unwrap();
        Self {
            nats,
            db,
            dir: pagesync_testkit::temp_dir(),
            fake,
            key_b64,
        }
    }

    async fn poll(&self) {
        let base = self.fake.base_url();
        let graph = GraphApp::new(&base, FakeGraph::APP_ID, FakeGraph::APP_SECRET);
        let (nats, db) = (self.nats.config(), self.db.config());
        let flags = ["--poll-page-call-interval", "0s"];
        let cfg = test_support::config(&graph, &self.key_b64, nats, db, &flags);
        let app = pagesync_poller::App::build(cfg).await.unwrap();
        assert!(app.run_cycle(None).await.unwrap().all_succeeded());
    }

    async fn drain(&self) {
        common::drain(&self.nats, &self.db, self.dir.path()).await;
    }

    /// What ingest publishes for the same message arriving by webhook.
    async fn webhook(&self) {
        let t = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
        let data = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE},
            "timestamp": t.timestamp_millis(), "message": {"mid": "m_conv_1", "text": "hello"}});
        let event = Event {
            id: EventId::parse("m_conv_1").unwrap(),
            event_type: EventType::Message,
            source: Source::Ingest,
            page_id: Some(PageId::parse(PAGE).unwrap()),
            psid: Some(Psid::parse(PSID).unwrap()),
            platform: pagesync_schema::Platform::Messenger,
            time: t,
            received_at: Utc::now(),
            data: serde_json::value::to_raw_value(&data).unwrap(),
        };
        Publisher::new(self.nats.js.clone(), self.nats.prefix.clone())
            .publish_all(&[event], None)
            .await
            .unwrap();
    }

    async fn rows(&self) -> Vec<(String, String)> {
        self.db
            .client()
            .await
            .query(
                "SELECT mid, source FROM messages WHERE page_id = $1",
                &[&PAGE],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    fn file_entries(&self) -> Vec<Value> {
        let path = self
            .dir
            .path()
            .join(format!("facebook/{PAGE}/conversations/{PSID}.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    async fn stream_copies(&self) -> Vec<String> {
        self.nats
            .events()
            .await
            .into_iter()
            .filter(|e| e.id.as_str() == "m_conv_1")
            .map(|e| e.source.as_str().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn a_webhook_then_a_poll_gives_one_row_one_file_entry_and_one_stream_message() {
    let w = World::new().await;

    w.webhook().await;
    w.drain().await;
    w.poll().await;
    w.drain().await;

    assert_eq!(
        w.rows().await,
        [("m_conv_1".to_owned(), "webhook".to_owned())]
    );
    assert_eq!(w.file_entries().len(), 1);
    assert_eq!(
        w.stream_copies().await,
        ["pagesync/ingest"],
        "the poll skipped a message the projection holds"
    );
}

#[tokio::test]
async fn a_poll_then_a_webhook_gives_one_row_and_one_file_entry_and_the_webhook_copy_wins() {
    let w = World::new().await;

    w.poll().await;
    w.drain().await;
    assert_eq!(w.rows().await, [("m_conv_1".to_owned(), "poll".to_owned())]);
    w.webhook().await;
    w.drain().await;

    assert_eq!(
        w.rows().await,
        [("m_conv_1".to_owned(), "webhook".to_owned())]
    );
    let entries = w.file_entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["message"]["mid"], "m_conv_1");
    // Different producers use different Nats-Msg-Ids, so the stream keeps both copies
    // under the same event id; consumers deduplicate by id (contract §3).
    assert_eq!(
        w.stream_copies().await,
        ["pagesync/poller", "pagesync/ingest"]
    );
}

#[tokio::test]
async fn files_hold_polled_messages_in_webhook_item_shape() {
    let w = World::new().await;
    let t = Utc.with_ymd_and_hms(2026, 11, 2, 9, 5, 0).unwrap();
    w.fake
        .add_message(PAGE, PSID, FakeMessage::page("m_conv_2", "hi there", t));

    w.poll().await;
    w.drain().await;

    let entries = w.file_entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0],
        json!({"sender": {"id": PSID}, "recipient": {"id": PAGE},
        "timestamp": Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap().timestamp_millis(),
        "message": {"mid": "m_conv_1", "text": "hello"}})
    );
    assert_eq!(entries[1]["message"]["is_echo"], true);
    assert_eq!(entries[1]["sender"]["id"], PAGE);
}
