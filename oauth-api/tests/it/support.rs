//! A running oauth-api of each test's own: database, stream, fake Graph API and,
//! for the self-test, a real ingest and projector on the same stream and database.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use pagesync_crypto::{EncryptionKey, OldKeys, TokenCipher, parse_old_keys};
use pagesync_fake_graph::FakeGraph;
use pagesync_oauth_api::{App, Config};
use pagesync_runtime::CancellationToken;
use pagesync_testkit::{Proxy, TestDb, TestNats};
use serde_json::Value;

pub const STATE_SECRET: &str = "state-secret-Qx81-do-not-log";
pub const OPERATOR_TOKEN: &str = "operator-token-Vb27-do-not-log";
pub const REDIRECT_URI: &str = "http://127.0.0.1:5000/facebook/callback";
/// Nothing listens here: without the pipeline the webhook self-test fails fast.
const NO_WEBHOOK: &str = "http://127.0.0.1:9/facebook/webhook";

/// A page of the fake Graph API: id, name, page token.
pub type FakePage = (&'static str, &'static str, &'static str);
pub const PAGE_A: FakePage = (
    "101368371725791",
    "Dog Page",
    "EAAB-page-token-A-Zk93xQ-s3cr3t",
);
pub const PAGE_B: FakePage = (
    "202468371725792",
    "Cat Page",
    "EAAB-page-token-B-Lm42wR-s3cr3t",
);

/// Ingest and projector on the app's stream and database.
struct Pipeline {
    ingest_url: String,
    data: tempfile::TempDir,
    stop: CancellationToken,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub nats: TestNats,
    pub fake: FakeGraph,
    pub key_b64: String,
    pub cipher: TokenCipher,
    /// Every response body this test read through the helpers.
    pub bodies: Mutex<Vec<String>>,
    /// Between the app and Postgres, when started with [`TestApp::spawn_behind_proxy`].
    pub proxy: Option<Proxy>,
    pipeline: Option<Pipeline>,
    shutdown: CancellationToken,
    /// What the running server was built from, so [`TestApp::restart`] can build it again.
    #[allow(dead_code)] // read by `restart`, which only the browser tests call
    config: Config,
    #[allow(dead_code)]
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The configuration of an in-process oauth-api.
pub fn config(
    nats: &TestNats,
    db: &TestDb,
    fake: &FakeGraph,
    key_b64: &str,
    old_keys: &str,
    webhook: &str,
) -> Config {
    let base = fake.base_url();
    let args = vec![
        "oauth-api",
        "--oauth-api-addr",
        "127.0.0.1:0",
        "--facebook-app-id",
        FakeGraph::APP_ID,
        "--facebook-app-secret",
        FakeGraph::APP_SECRET,
        "--facebook-redirect-uri",
        REDIRECT_URI,
        "--facebook-webhook-address",
        webhook,
        "--state-token-secret",
        STATE_SECRET,
        "--token-encryption-key",
        key_b64,
        "--token-encryption-old-keys",
        old_keys,
        "--graph-api-base",
        &base,
        "--facebook-dialog-url",
        "https://www.facebook.test/v26.0/dialog/oauth",
        "--operator-token",
        OPERATOR_TOKEN,
        "--self-test-timeout",
        "20s",
        "--graph-page-call-interval",
        "0s",
        "--graph-retry-min-delay",
        "5ms",
    ];
    let mut c: Config = pagesync_runtime::config::parse_from(args).expect("test config parses");
    c.nats = nats.config();
    c.database = db.config();
    c
}

impl TestApp {
    /// oauth-api alone: the webhook self-test fails (nothing listens), polling works.
    pub async fn spawn() -> Self {
        Self::start(false, None, |_| {}).await
    }

    /// oauth-api alone, its configuration adjusted first.
    pub async fn spawn_configured(configure: impl FnOnce(&mut Config)) -> Self {
        Self::start(false, None, configure).await
    }

    /// oauth-api with a real ingest and projector, so the self-test can pass.
    pub async fn spawn_with_pipeline() -> Self {
        Self::start(true, None, |_| {}).await
    }

    /// oauth-api alone, reaching Postgres through a proxy the test can freeze, with
    /// the statement deadline `deadline`.
    pub async fn spawn_behind_proxy(deadline: Duration) -> Self {
        Self::start(false, Some(deadline), |_| {}).await
    }

    async fn start(
        pipeline: bool,
        proxied_deadline: Option<Duration>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        pagesync_testkit::logs::capture("trace");
        let (nats, db, fake) = (
            TestNats::new().await,
            TestDb::new().await,
            FakeGraph::start().await,
        );
        nats.ensure_stream().await;
        let pipeline = if pipeline {
            Some(start_pipeline(&nats, &db).await)
        } else {
            None
        };
        let webhook = pipeline
            .as_ref()
            .map_or(NO_WEBHOOK.to_owned(), |p| p.ingest_url.clone());
        let (key, key_b64) = EncryptionKey::generate();
        let mut cfg = config(&nats, &db, &fake, &key_b64, "", &webhook);
        configure(&mut cfg);
        let mut proxy = None;
        if let Some(deadline) = proxied_deadline {
            proxy = Some(Proxy::in_front_of(&mut cfg.database, deadline).await);
        }
        let config = cfg.clone();
        let app = App::build(cfg).await.expect("oauth-api starts");
        let addr = app.local_addr();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            addr,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db,
            nats,
            fake,
            key_b64,
            cipher: TokenCipher::new(key, OldKeys::default()),
            bodies: Mutex::new(Vec::new()),
            proxy,
            pipeline,
            shutdown,
            config,
            server: Some(server),
        }
    }

    /// Stops the server as SIGTERM would, waits until it has stopped, and starts a new
    /// one from the same configuration on the same address (as a restart does).
    #[allow(dead_code)] // the browser tests' (tests/browser/recovery.rs)
    pub async fn restart(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
        let mut cfg = self.config.clone();
        cfg.oauth_api_addr = self.addr;
        let app = App::build(cfg).await.expect("oauth-api starts again");
        assert_eq!(app.local_addr(), self.addr);
        self.shutdown = CancellationToken::new();
        self.server = Some(tokio::spawn(app.run_until_stopped(self.shutdown.clone())));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The pipeline's ingest webhook URL.
    pub fn ingest_url(&self) -> &str {
        &self.pipeline.as_ref().expect("pipeline started").ingest_url
    }

    /// oauth-api with the real ingest and projector, its configuration adjusted first.
    pub async fn spawn_with_pipeline_configured(configure: impl FnOnce(&mut Config)) -> Self {
        Self::start(true, None, configure).await
    }

    /// Shuts the oauth-api down (as SIGTERM would).
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    pub fn data_dir(&self) -> &Path {
        self.pipeline
            .as_ref()
            .expect("pipeline started")
            .data
            .path()
    }

    /// Keeps the body for the secrets scan and returns (status, JSON or text).
    pub async fn read(&self, resp: reqwest::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        self.bodies.lock().unwrap().push(text.clone());
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    /// `GET /facebook/login`: (session cookie "session_id=...", state, the redirect URL).
    pub async fn login(&self, cookie: Option<&str>) -> (String, String, reqwest::Url) {
        let mut req = self.http.get(self.url("/facebook/login"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 307);
        let cookie = match cookie {
            Some(c) => c.to_owned(),
            None => set_cookie_pair(&resp).expect("a new session sets a cookie"),
        };
        let location = reqwest::Url::parse(
            resp.headers()
                .get("location")
                .expect("redirect has a location")
                .to_str()
                .unwrap(),
        )
        .unwrap();
        let state = location
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .expect("state in the redirect");
        (cookie, state, location)
    }

    pub async fn callback(&self, cookie: Option<&str>, code: &str, state: &str) -> (u16, Value) {
        let (status, body, _) = self.callback_setting(cookie, code, state).await;
        (status, body)
    }

    /// The callback, with the `session_id=...` pair of its `Set-Cookie`, if any.
    pub async fn callback_setting(
        &self,
        cookie: Option<&str>,
        code: &str,
        state: &str,
    ) -> (u16, Value, Option<String>) {
        let mut url = reqwest::Url::parse(&self.url("/facebook/callback")).unwrap();
        url.query_pairs_mut()
            .append_pair("code", code)
            .append_pair("state", state);
        let mut req = self.http.get(url);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.unwrap();
        let set = set_cookie_pair(&resp);
        let (status, body) = self.read(resp).await;
        (status, body, set)
    }

    /// Adds the pages to the fake and a Facebook user who manages them; returns its login code.
    pub fn facebook_user(&self, name: &str, pages: &[FakePage]) -> String {
        for (id, page_name, token) in pages {
            self.fake.add_page(id, page_name, token);
        }
        let user_token = format!("user-token-{name}-Pq55-s3cr3t");
        let ids: Vec<&str> = pages.iter().map(|p| p.0).collect();
        self.fake.add_user(&user_token, &ids);
        let code = format!("login-code-{name}-{}", uuid::Uuid::new_v4().simple());
        self.fake.add_login_code(&code, &user_token);
        code
    }

    /// A full login and callback: (session cookie, status, answer).
    pub async fn connect(&self, name: &str, pages: &[FakePage]) -> (String, u16, Value) {
        let code = self.facebook_user(name, pages);
        let (pending, state, _) = self.login(None).await;
        let (status, body, set) = self.callback_setting(Some(&pending), &code, &state).await;
        // A completed connect replaces the login's session with a new one.
        let cookie = set.unwrap_or(pending);
        (cookie, status, body)
    }

    /// An API request with a session cookie or the operator token (JSON bodies).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        match auth {
            Auth::Operator => req = req.bearer_auth(OPERATOR_TOKEN),
            // A browser client declares itself (CSRF rule); JSON bodies would do too.
            Auth::Session(c) => req = req.header("cookie", c).header("x-requested-with", "test"),
            Auth::None => {}
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.read(req.send().await.unwrap()).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql).await
    }

    /// Every secret the test handed out: no one of them may be stored or shown.
    pub fn secrets(&self) -> Vec<String> {
        vec![
            PAGE_A.2.to_owned(),
            PAGE_B.2.to_owned(),
            "user-token-".to_owned(),
            "-long-lived".to_owned(),
            "login-code-".to_owned(),
            FakeGraph::APP_SECRET.to_owned(),
            STATE_SECRET.to_owned(),
            OPERATOR_TOKEN.to_owned(),
            self.key_b64.clone(),
        ]
    }
}

/// The `name=value` pair of a response's `Set-Cookie`, if it sets one.
pub fn set_cookie_pair(resp: &reqwest::Response) -> Option<String> {
    let set = resp.headers().get("set-cookie")?.to_str().unwrap();
    Some(set.split(';').next().unwrap().to_owned())
}

#[derive(Clone, Copy)]
pub enum Auth<'a> {
    Operator,
    Session(&'a str),
    None,
}

async fn start_pipeline(nats: &TestNats, db: &TestDb) -> Pipeline {
    let stop = CancellationToken::new();
    let ingest_cfg = pagesync_ingest::Config {
        ingest_addr: "127.0.0.1:0".parse().unwrap(),
        facebook_app_secret: secrecy::SecretString::from(FakeGraph::APP_SECRET.to_owned()),
        facebook_verify_token: secrecy::SecretString::from("verify".to_owned()),
        ingest_max_body_bytes: 4 * 1024 * 1024,
        ingest_body_budget_bytes: 64 * 1024 * 1024,
        ingest_body_timeout: Duration::from_secs(1),
        ingest_publish_timeout: Duration::from_secs(3),
        http: pagesync_runtime::config::HttpConfig::default(),
        nats: nats.config(),
        telemetry: pagesync_runtime::telemetry::TelemetryConfig {
            log_format: pagesync_runtime::telemetry::LogFormat::Pretty,
            otel_exporter_otlp_endpoint: None,
        },
    };
    let ingest = pagesync_ingest::App::build(ingest_cfg)
        .await
        .expect("ingest starts");
    let ingest_url = format!("http://{}/facebook/webhook", ingest.local_addr());
    tokio::spawn(ingest.run_until_stopped(stop.clone()));

    let data = pagesync_testkit::temp_dir();
    let mut p: pagesync_projector::Config =
        pagesync_runtime::config::parse_from::<pagesync_projector::Config, _, _>(["projector"])
            .expect("projector defaults");
    p.nats = nats.config();
    p.database = db.config();
    p.data_dir = data.path().to_owned();
    p.projector_addr = "127.0.0.1:0".parse().unwrap();
    p.projector_fetch_expiry = Duration::from_millis(200);
    p.projector_owner_check_interval = Duration::from_millis(200);
    let projector = pagesync_projector::App::build(p)
        .await
        .expect("projector starts");
    tokio::spawn(projector.run_until_stopped(stop.clone()));
    Pipeline {
        ingest_url,
        data,
        stop,
    }
}

/// A cipher with these keys (base64), for assertions.
pub fn cipher_of(current_b64: &str, old: &str) -> TokenCipher {
    TokenCipher::new(
        EncryptionKey::from_base64(current_b64).unwrap(),
        parse_old_keys(old).unwrap(),
    )
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}
