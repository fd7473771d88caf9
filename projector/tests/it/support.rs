//! A projector of each test's own: stream, database, data folder and consumer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pagesync_projector::{App, Config, DrainReport};
use pagesync_runtime::CancellationToken;
use pagesync_schema::{Event, EventId, EventType, PageId, Psid, Publisher, Source};
use pagesync_testkit::{TestDb, TestNats};
use serde_json::Value;

pub struct TestProjector {
    pub nats: TestNats,
    pub db: TestDb,
    pub dir: tempfile::TempDir,
}

impl TestProjector {
    pub async fn new() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let nats = TestNats::new().await;
        nats.ensure_stream().await;
        Self {
            nats,
            db: TestDb::new().await,
            dir: pagesync_testkit::temp_dir(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration of an in-process projector (ops on a free port).
    pub fn config(&self) -> Config {
        let mut c: Config =
            pagesync_runtime::config::parse_from::<Config, _, _>(["projector"]).expect("defaults");
        c.nats = self.nats.config();
        c.database = self.db.config();
        c.data_dir = self.dir.path().to_owned();
        c.projector_addr = "127.0.0.1:0".parse().unwrap();
        c.projector_fetch_expiry = std::time::Duration::from_millis(200);
        c
    }

    /// Environment for the `projector` binary.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.nats.env();
        env.push(("DATABASE_URL".into(), self.db.url.clone()));
        env.push(("DATA_DIR".into(), self.dir.path().display().to_string()));
        env.push(("PROJECTOR_ADDR".into(), "127.0.0.1:0".into()));
        env.push(("PROJECTOR_FETCH_EXPIRY".into(), "200ms".into()));
        env
    }

    pub async fn drain(&self) -> DrainReport {
        App::build(self.config())
            .await
            .expect("projector builds")
            .drain(CancellationToken::new())
            .await
            .expect("drain succeeds")
    }

    /// `projector rebuild` on this projector's stream, database and folder.
    pub async fn rebuild(&self) -> pagesync_projector::RebuildReport {
        App::build(self.config())
            .await
            .expect("projector builds")
            .rebuild(CancellationToken::new())
            .await
            .expect("rebuild succeeds")
    }

    pub async fn publish(&self, events: &[Event]) {
        Publisher::new(self.nats.js.clone(), self.nats.prefix.clone())
            .publish_all(events, None)
            .await
            .expect("publish");
    }

    /// Publishes without `Nats-Msg-Id`, as a copy retried after the duplicate window arrives.
    pub async fn publish_again(&self, events: &[Event]) {
        for e in events {
            self.nats
                .js
                .publish(e.subject(&self.nats.prefix), e.to_json().into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
    }

    /// Publishes raw bytes to `<prefix>.<token>.<type>`.
    pub async fn publish_raw(&self, tokens: &str, payload: Vec<u8>) {
        self.nats
            .js
            .publish(format!("{}.{tokens}", self.nats.prefix), payload.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql).await
    }

    pub fn conversation_file(&self, page: &str, psid: &str) -> Option<Vec<Value>> {
        let path = self
            .dir
            .path()
            .join("facebook")
            .join(page)
            .join("conversations")
            .join(format!("{psid}.json"));
        let bytes = std::fs::read(path).ok()?;
        Some(serde_json::from_slice(&bytes).expect("conversation file is JSON"))
    }

    pub fn page_file(&self, page: &str) -> Option<Value> {
        let path = self
            .dir
            .path()
            .join("facebook")
            .join(page)
            .join("page_metadata.json");
        let bytes = std::fs::read(path).ok()?;
        Some(serde_json::from_slice(&bytes).expect("page file is JSON"))
    }

    /// Every row of the projection tables, without times of application.
    pub async fn rows(&self) -> String {
        let client = self.db.client().await;
        let mut out = String::new();
        for table in [
            "applied_events",
            "conversations",
            "conversation_events",
            "messages",
            "receipts",
            "status_changes",
            "reactions",
            "message_edits",
            "page_snapshots",
            "page_fields",
            "dead_letters",
        ] {
            let sql = format!(
                "SELECT coalesce(jsonb_agg(x ORDER BY x::text), '[]')::text FROM
                 (SELECT to_jsonb(t) - 'applied_at' - 'stream_seq' - 'first_failed_at' - 'last_failed_at'
                      - 'item_version' - 'items_reset' AS x
                  FROM {table} t) s"
            );
            let v: String = client.query_one(&sql, &[]).await.unwrap().get(0);
            out.push_str(&format!("{table}: {v}\n"));
        }
        out
    }

    pub fn dead_letter_metric(&self) -> f64 {
        let text = pagesync_runtime::ops::metrics_handle().render();
        let needle = format!(
            "pagesync_projector_dead_letters_total{{stream=\"{}\"}} ",
            self.nats.stream
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }
}

/// A Prometheus recorder of the calling test's own, for its thread (a
/// `#[tokio::test]` runs the projector on it): the test sees only the metrics it
/// caused, not those of the tests running beside it. Keep the guard while measuring.
pub fn own_metrics() -> (
    metrics::LocalRecorderGuard<'static>,
    metrics_exporter_prometheus::PrometheusHandle,
) {
    let recorder: &'static metrics_exporter_prometheus::PrometheusRecorder = Box::leak(Box::new(
        metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder(),
    ));
    let handle = recorder.handle();
    (metrics::set_default_local_recorder(recorder), handle)
}

/// Every file under `root`, by relative path.
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// An event as a producer would build it.
pub fn event(
    ty: EventType,
    source: Source,
    id: &str,
    page: &str,
    psid: Option<&str>,
    time_ms: i64,
    data: Value,
) -> Event {
    Event {
        id: EventId::parse(id).unwrap(),
        event_type: ty,
        source,
        page_id: Some(PageId::parse(page).unwrap()),
        psid: psid.map(|p| Psid::parse(p).unwrap()),
        platform: pagesync_schema::Platform::Messenger,
        time: chrono::DateTime::from_timestamp_millis(time_ms).unwrap(),
        received_at: chrono::DateTime::from_timestamp_millis(time_ms + 5).unwrap(),
        data: serde_json::value::to_raw_value(&data).unwrap(),
    }
}

/// A customer's message (`echo`: the page's).
pub fn message(source: Source, page: &str, psid: &str, mid: &str, ts: i64, text: &str) -> Event {
    event(
        EventType::Message,
        source,
        mid,
        page,
        Some(psid),
        ts,
        serde_json::json!({"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": ts,
                           "message": {"mid": mid, "text": text}}),
    )
}

pub fn echo(page: &str, psid: &str, mid: &str, ts: i64, text: &str) -> Event {
    event(
        EventType::MessageEcho,
        Source::Ingest,
        mid,
        page,
        Some(psid),
        ts,
        serde_json::json!({"sender": {"id": page}, "recipient": {"id": psid}, "timestamp": ts,
                           "message": {"mid": mid, "text": text, "is_echo": true}}),
    )
}

pub fn status(page: &str, psid: &str, open: bool, at: i64) -> Event {
    let s = if open { "open" } else { "closed" };
    event(
        EventType::ConversationStatus,
        Source::OauthApi,
        &format!("status:{page}:{psid}:{at}"),
        page,
        Some(psid),
        at,
        serde_json::json!({"psid": psid, "status": s, "at": at}),
    )
}
