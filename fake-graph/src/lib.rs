//! An in-process fake of the Facebook Graph API, for tests and benchmarks only.
//!
//! It serves, on `127.0.0.1` port 0, what pagesync calls: the page node,
//! `/{page}/conversations` with cursor paging and nested message paging (only the
//! 20 most recent messages are readable, as on Facebook; `platform=instagram` lists
//! the linked Instagram account's), `/{conversation}/messages`,
//! `/{page}/subscribed_apps` GET/POST, `/me/accounts`, `/oauth/access_token` (a login
//! `code` or `fb_exchange_token`) and the Send API (`POST /{page}/messages`, with the
//! 24-hour window). Tokens are checked (`190` when wrong or revoked), `appsecret_proof`
//! is verified when sent, and faults can be programmed: HTTP 429, each throttling
//! code with Facebook's error JSON and usage headers, 190, 5xx, any error, latency.
//! Every request is logged for assertions.

mod faults;
mod model;
mod query;
mod routes;
mod server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

pub use faults::{Fault, Match};
pub use model::{FakeMessage, SentMessage};
pub use server::LoggedRequest;

use faults::FaultRule;
use model::{ALL_FIELDS, FakeConversation, FakePage, Inner};

/// The Graph API version segment the fake answers under (any version is accepted).
pub const VERSION: &str = "v26.0";

/// A running fake Graph API. Dropping it stops the server.
pub struct FakeGraph {
    addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGraph {
    /// App id of the fake's default app.
    pub const APP_ID: &'static str = "1234567890";
    /// App secret of the fake's default app.
    pub const APP_SECRET: &'static str = "fake-app-secret";

    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Graph API");
        Self::serve(listener)
    }

    /// Starts the fake on `addr` (the demo's `fake-graph` binary).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self::serve(tokio::net::TcpListener::bind(addr).await?))
    }

    fn serve(listener: tokio::net::TcpListener) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(Inner::new(
            format!("http://{addr}/{VERSION}"),
            Self::APP_ID,
            Self::APP_SECRET,
        )));
        let app = server::router(state.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake Graph API stopped serving: {e}");
            }
        });
        Self { addr, state, task }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().expect("fake state lock")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/v26.0`: what `GRAPH_API_BASE` should be.
    pub fn base_url(&self) -> String {
        self.lock().base_url.clone()
    }

    // ---- data ------------------------------------------------------------------

    /// Adds a page with a page token; it starts subscribed to every webhook field.
    pub fn add_page(&self, id: &str, name: &str, token: &str) {
        let mut fields = serde_json::Map::new();
        fields.insert("id".into(), id.into());
        fields.insert("name".into(), name.into());
        fields.insert("category".into(), "Pet Service".into());
        fields.insert(
            "category_list".into(),
            json!([{"id": "144982405562750", "name": "Pet Service"}]),
        );
        fields.insert("fan_count".into(), 42.into());
        fields.insert(
            "link".into(),
            format!("https://www.facebook.com/{id}").into(),
        );
        self.lock().pages.insert(
            id.into(),
            FakePage {
                token: token.into(),
                revoked: false,
                fields,
                subscribed_fields: Some(ALL_FIELDS.iter().map(|s| s.to_string()).collect()),
                conversations: Vec::new(),
            },
        );
    }

    /// Sets a field of the page node (`about`, `website`, ...).
    pub fn set_page_field(&self, page: &str, key: &str, value: Value) {
        self.with_page(page, |p| {
            p.fields.insert(key.into(), value);
        });
    }

    /// Subscribes or unsubscribes the app (as Facebook does after an hour of failed webhooks).
    pub fn set_subscribed(&self, page: &str, subscribed: bool) {
        self.with_page(page, |p| {
            p.subscribed_fields =
                subscribed.then(|| ALL_FIELDS.iter().map(|s| s.to_string()).collect());
        });
    }

    pub fn subscribed_fields(&self, page: &str) -> Option<Vec<String>> {
        self.lock()
            .pages
            .get(page)
            .and_then(|p| p.subscribed_fields.clone())
    }

    /// Makes the page's token invalid: every call answers 190 (subcode 460) from now on.
    pub fn revoke_token(&self, page: &str) {
        self.with_page(page, |p| p.revoked = true);
    }

    /// Adds a message to the conversation of `psid` (created on first use, id `t_<psid>`).
    pub fn add_message(&self, page: &str, psid: &str, message: FakeMessage) {
        self.add_conversation_message(page, psid, false, message);
    }

    /// Links an Instagram professional account to the page: the page node's and
    /// `/me/accounts`' `instagram_business_account` field.
    pub fn link_instagram(&self, page: &str, account_id: &str) {
        self.set_page_field(
            page,
            "instagram_business_account",
            json!({"id": account_id}),
        );
    }

    /// Adds a message to the Instagram conversation of `igsid` on the page's linked
    /// account (created on first use, id `t_ig_<igsid>`), listed by
    /// `/{page}/conversations?platform=instagram`.
    pub fn add_instagram_message(&self, page: &str, igsid: &str, message: FakeMessage) {
        self.add_conversation_message(page, igsid, true, message);
    }

    fn add_conversation_message(
        &self,
        page: &str,
        customer: &str,
        instagram: bool,
        message: FakeMessage,
    ) {
        self.with_page(page, |p| {
            let found = p
                .conversations
                .iter()
                .position(|c| c.psid == customer && c.instagram == instagram);
            let conv = match found {
                Some(i) => &mut p.conversations[i],
                None => {
                    let prefix = if instagram { "t_ig_" } else { "t_" };
                    p.conversations.push(FakeConversation {
                        id: format!("{prefix}{customer}"),
                        psid: customer.into(),
                        customer_name: format!("Customer {customer}"),
                        name_in_participants: true,
                        messages: Vec::new(),
                        instagram,
                    });
                    p.conversations.last_mut().expect("just pushed")
                }
            };
            conv.messages.push(message);
        });
    }

    /// A user token that `/me/accounts` answers with these pages (added before).
    pub fn add_user(&self, user_token: &str, pages: &[&str]) {
        self.lock().users.insert(
            user_token.into(),
            pages.iter().map(|s| s.to_string()).collect(),
        );
    }

    /// A login code that `oauth/access_token` exchanges (once) for `user_token`.
    pub fn add_login_code(&self, code: &str, user_token: &str) {
        self.lock().codes.insert(code.into(), user_token.into());
    }

    // ---- behaviour --------------------------------------------------------------

    /// The next `times` matching requests (`None`: every one) fail with `fault`.
    pub fn inject(&self, matcher: Match, fault: Fault, times: Option<usize>) {
        self.lock().faults.push(FaultRule {
            matcher,
            fault,
            remaining: times,
        });
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Delay before every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Conversations per result page (Facebook's default is 25).
    pub fn set_conversations_page_size(&self, n: usize) {
        self.lock().conversations_page_size = n.max(1);
    }

    /// Leaves the customer's name out of the conversation's `participants`, so only
    /// the User Profile API (`GET /{psid}`) gives it.
    pub fn name_only_in_profile(&self, page: &str, psid: &str) {
        self.with_page(page, |p| {
            for c in p.conversations.iter_mut().filter(|c| c.psid == psid) {
                c.name_in_participants = false;
            }
        });
    }

    /// Largest nested messages page, whatever `messages.limit(n)` asks.
    pub fn set_nested_page_size(&self, n: usize) {
        self.lock().nested_page_size = n.max(1);
    }

    pub fn set_accounts_page_size(&self, n: usize) {
        self.lock().accounts_page_size = n.max(1);
    }

    /// Serves an empty conversations page with a `next` link before the last one.
    pub fn set_empty_page_before_last(&self, on: bool) {
        self.lock().empty_page_before_last = on;
    }

    /// Adds `X-App-Usage` at this percentage to every answer.
    pub fn set_app_usage(&self, percent: Option<u32>) {
        self.lock().app_usage_percent = percent;
    }

    // ---- assertions -------------------------------------------------------------

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Requests whose path contains `path_part`.
    pub fn count(&self, path_part: &str) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|r| r.path.contains(path_part))
            .count()
    }

    /// Requests with this method whose path contains `path_part`, counted as they
    /// arrived: including those whose caller gave up before the (delayed) answer.
    pub fn arrived(&self, method: &axum::http::Method, path_part: &str) -> usize {
        self.lock()
            .arrivals
            .iter()
            .filter(|(m, p)| m == method && p.contains(path_part))
            .count()
    }

    pub fn clear_log(&self) {
        let mut s = self.lock();
        s.log.clear();
        s.arrivals.clear();
    }

    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.lock().sent.clone()
    }

    fn with_page(&self, page: &str, f: impl FnOnce(&mut FakePage)) {
        let mut s = self.lock();
        let p = s
            .pages
            .get_mut(page)
            .unwrap_or_else(|| panic!("fake Graph API has no page {page}"));
        f(p);
    }
}
