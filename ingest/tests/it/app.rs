use std::net::SocketAddr;
use std::time::Duration;

use pagesync_ingest::{App, Config};
use pagesync_runtime::CancellationToken;
use pagesync_runtime::telemetry::{LogFormat, TelemetryConfig};
use pagesync_schema::signature::AppSecret;
use pagesync_testkit::TestNats;
use secrecy::SecretString;

pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const PAGE: &str = "101368371725791";
pub const PSID: &str = "123456789";

/// A running ingest on port 0 with its own stream.
pub struct TestApp {
    pub addr: SocketAddr,
    pub nats: TestNats,
    pub http: reqwest::Client,
    pub secret: AppSecret,
    shutdown: CancellationToken,
}

pub fn config(nats: &TestNats) -> Config {
    Config {
        ingest_addr: "127.0.0.1:0".parse().unwrap(),
        facebook_app_secret: SecretString::from(APP_SECRET.to_owned()),
        facebook_verify_token: SecretString::from(VERIFY_TOKEN.to_owned()),
        ingest_max_body_bytes: 4 * 1024 * 1024,
        ingest_body_budget_bytes: 64 * 1024 * 1024,
        ingest_body_timeout: Duration::from_secs(1),
        ingest_publish_timeout: Duration::from_secs(3),
        http: pagesync_runtime::config::HttpConfig::default(),
        nats: nats.config(),
        telemetry: TelemetryConfig {
            log_format: LogFormat::Pretty,
            otel_exporter_otlp_endpoint: None,
        },
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        let nats = TestNats::new().await;
        let config = config(&nats);
        Self::spawn_with(nats, config).await
    }

    pub async fn spawn_with(nats: TestNats, config: Config) -> Self {
        let app = App::build(config).await.expect("ingest starts");
        let addr = app.local_addr();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            addr,
            nats,
            http: reqwest::Client::new(),
            secret: AppSecret::new(&SecretString::from(APP_SECRET.to_owned())),
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` signed as Facebook would sign it.
    pub async fn post_signed(&self, body: impl Into<Vec<u8>>) -> reqwest::Response {
        let body = body.into();
        let signature = self.secret.sign(&body);
        self.post("/facebook/webhook", body, Some(&signature)).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        req.send().await.expect("request sent")
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A one-message delivery with the given mid.
pub fn message_delivery(mid: &str) -> String {
    serde_json::json!({"object": "page", "entry": [{"id": PAGE, "time": 1458692752478_i64, "messaging": [
        {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1458692752478_i64,
         "message": {"mid": mid, "text": "hello"}}]}]})
    .to_string()
}

/// The value of a counter line in Prometheus text, summed over matching label sets.
pub fn metric_value(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
