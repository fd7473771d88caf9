//! What several end-to-end tests share: a real ingest, a stream, a database and a
//! data folder of the test's own, and the projector draining them.

#![allow(dead_code)] // each test binary uses its own part of the harness

use pagesync_projector::DrainReport;
use pagesync_runtime::CancellationToken;
use pagesync_schema::signature::AppSecret;
use pagesync_testkit::{TestDb, TestNats};

pub const APP_SECRET: &str = "e2e-secret";

/// A projector configuration on the given stream, database and folder (ops on a free port).
pub fn projector_config(
    nats: &TestNats,
    db: &TestDb,
    dir: &std::path::Path,
) -> pagesync_projector::Config {
    let mut cfg: pagesync_projector::Config =
        pagesync_runtime::config::parse_from(["projector"]).unwrap();
    cfg.nats = nats.config();
    cfg.database = db.config();
    cfg.data_dir = dir.to_owned();
    cfg.projector_addr = "127.0.0.1:0".parse().unwrap();
    cfg.projector_fetch_expiry = std::time::Duration::from_millis(200);
    cfg
}

/// Applies everything in the stream, then returns.
pub async fn drain(nats: &TestNats, db: &TestDb, dir: &std::path::Path) -> DrainReport {
    pagesync_projector::App::build(projector_config(nats, db, dir))
        .await
        .unwrap()
        .drain(CancellationToken::new())
        .await
        .unwrap()
}

/// A running ingest in front of a stream, a database and a data folder of its own.
pub struct Pipeline {
    pub nats: TestNats,
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    url: String,
    signer: AppSecret,
    stop: CancellationToken,
}

impl Pipeline {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like `start`, with ingest's configuration changed by `tweak` first.
    pub async fn start_with(tweak: impl FnOnce(&mut pagesync_ingest::Config)) -> Self {
        let nats = TestNats::new().await;
        let mut cfg: pagesync_ingest::Config = pagesync_runtime::config::parse_from([
            "ingest",
            "--ingest-addr",
            "127.0.0.1:0",
            "--facebook-app-secret",
            APP_SECRET,
            "--facebook-verify-token",
            "e2e-verify",
        ])
        .unwrap();
        cfg.nats = nats.config();
        tweak(&mut cfg);
        let signer = AppSecret::new(&cfg.facebook_app_secret);
        let ingest = pagesync_ingest::App::build(cfg).await.unwrap();
        let url = format!("http://{}/facebook/webhook", ingest.local_addr());
        let stop = CancellationToken::new();
        tokio::spawn(ingest.run_until_stopped(stop.clone()));
        Self {
            nats,
            db: TestDb::new().await,
            dir: pagesync_testkit::temp_dir(),
            url,
            signer,
            stop,
        }
    }

    /// POSTs `body` signed as Facebook signs it; the answer's status.
    pub async fn post_signed(&self, body: impl Into<Vec<u8>>) -> u16 {
        let body = body.into();
        reqwest::Client::new()
            .post(&self.url)
            .header("X-Hub-Signature-256", self.signer.sign(&body))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn drain(&self) -> DrainReport {
        drain(&self.nats, &self.db, self.dir.path()).await
    }

    pub fn file(&self, relative: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.path().join(relative)).ok()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Every file under `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
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
