//! An in-process fake of the Facebook Graph API, for tests and benchmarks only.
//!
//! It serves, on `127.0.0.1` port 0, what pagesync calls: the page node,
//! `/{page}/conversations` with cursor paging and nested message paging (only the
//! 20 most recent messages are readable, as on Facebook), `/{conversation}/messages`,
//! `/{page}/subscribed_apps` GET/POST, `/me/accounts`, `/oauth/access_token` (a login
//! `code` or `fb_exchange_token`) and the Send API (`POST /{page}/messages`, with the
//! 24-hour window). Tokens are checked (`190` when wrong or revoked), `appsecret_proof`
//! is verified when sent, and faults can be programmed: HTTP 429, each throttling
//! code with Facebook's error JSON and usage headers, 190, 5xx, any error, latency.
//! Every request is logged for assertions.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The Graph API version segment the fake answers under (any version is accepted).
pub const VERSION: &str = "v26.0";

/// Facebook returns details only for a conversation's 20 most recent messages.
const READABLE_MESSAGES: usize = 20;

/// A message in a fake conversation.
#[derive(Debug, Clone)]
pub struct FakeMessage {
    pub id: String,
    /// Sent by the page (an echo in webhook terms) rather than the customer.
    pub from_page: bool,
    pub text: String,
    pub created: DateTime<Utc>,
    /// `(mime type, url)` of one attachment.
    pub attachment: Option<(String, String)>,
}

impl FakeMessage {
    pub fn customer(id: &str, text: &str, created: DateTime<Utc>) -> Self {
        Self {
            id: id.into(),
            from_page: false,
            text: text.into(),
            created,
            attachment: None,
        }
    }

    pub fn page(id: &str, text: &str, created: DateTime<Utc>) -> Self {
        Self {
            from_page: true,
            ..Self::customer(id, text, created)
        }
    }

    pub fn with_attachment(mut self, mime: &str, url: &str) -> Self {
        self.attachment = Some((mime.into(), url.into()));
        self
    }
}

#[derive(Debug, Clone)]
struct FakeConversation {
    id: String,
    psid: String,
    customer_name: String,
    messages: Vec<FakeMessage>,
}

impl FakeConversation {
    fn updated(&self) -> Option<DateTime<Utc>> {
        self.messages.iter().map(|m| m.created).max()
    }

    /// Readable messages, newest first.
    fn readable(&self) -> Vec<&FakeMessage> {
        let mut v: Vec<&FakeMessage> = self.messages.iter().collect();
        v.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        v.truncate(READABLE_MESSAGES);
        v
    }
}

#[derive(Debug, Clone)]
struct FakePage {
    token: String,
    revoked: bool,
    fields: serde_json::Map<String, Value>,
    subscribed_fields: Option<Vec<String>>,
    conversations: Vec<FakeConversation>,
}

/// A programmed failure.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This HTTP status with a plain-text body (429 without Facebook's JSON, say).
    Http(u16),
    /// A 5xx with Facebook's transient error JSON (code 2).
    ServerError(u16),
    /// HTTP 400 with a throttling code's error JSON and a usage header at 100%;
    /// `regain_minutes` goes into `estimated_time_to_regain_access`.
    Throttle { code: i64, regain_minutes: u32 },
    /// Code 190 with this subcode.
    TokenInvalid { subcode: Option<i64> },
    /// Any Facebook error.
    Error {
        status: u16,
        code: i64,
        subcode: Option<i64>,
        message: String,
    },
}

/// Which requests a fault applies to.
#[derive(Debug, Clone)]
pub enum Match {
    Any,
    /// Requests whose path contains this text (`"conversations"`, `"subscribed_apps"`, a page id).
    Path(String),
    /// Requests with this method whose path contains this text.
    MethodPath(Method, String),
}

impl Match {
    pub fn path(s: &str) -> Self {
        Self::Path(s.into())
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Path(p) => path.contains(p.as_str()),
            Self::MethodPath(m, p) => m == method && path.contains(p.as_str()),
        }
    }
}

#[derive(Debug)]
struct FaultRule {
    matcher: Match,
    fault: Fault,
    /// `None`: forever.
    remaining: Option<usize>,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub method: Method,
    /// Without the version segment: `/101/conversations`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: String,
    /// The status the fake answered.
    pub status: u16,
}

impl LoggedRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A message sent through the fake Send API.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub page_id: String,
    pub psid: String,
    pub text: String,
    pub messaging_type: String,
    pub tag: Option<String>,
    pub message_id: String,
}

#[derive(Debug)]
struct Inner {
    base_url: String,
    app_id: String,
    app_secret: String,
    pages: BTreeMap<String, FakePage>,
    users: HashMap<String, Vec<String>>,
    codes: HashMap<String, String>,
    faults: Vec<FaultRule>,
    latency: Duration,
    log: Vec<LoggedRequest>,
    sent: Vec<SentMessage>,
    conversations_page_size: usize,
    nested_page_size: usize,
    accounts_page_size: usize,
    empty_page_before_last: bool,
    app_usage_percent: Option<u32>,
    next_id: u64,
}

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
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(Inner {
            base_url: format!("http://{addr}/{VERSION}"),
            app_id: Self::APP_ID.into(),
            app_secret: Self::APP_SECRET.into(),
            pages: BTreeMap::new(),
            users: HashMap::new(),
            codes: HashMap::new(),
            faults: Vec::new(),
            latency: Duration::ZERO,
            log: Vec::new(),
            sent: Vec::new(),
            conversations_page_size: 25,
            nested_page_size: 25,
            accounts_page_size: 25,
            empty_page_before_last: false,
            app_usage_percent: None,
            next_id: 1,
        }));
        let app = Router::new()
            .route("/{version}/{node}", any(handle_node))
            .route("/{version}/{node}/{edge}", any(handle_edge))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
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
        self.with_page(page, |p| {
            let conv = match p.conversations.iter_mut().position(|c| c.psid == psid) {
                Some(i) => &mut p.conversations[i],
                None => {
                    p.conversations.push(FakeConversation {
                        id: format!("t_{psid}"),
                        psid: psid.into(),
                        customer_name: format!("Customer {psid}"),
                        messages: Vec::new(),
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

    pub fn clear_log(&self) {
        self.lock().log.clear();
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

const ALL_FIELDS: [&str; 9] = [
    "messages",
    "messaging_postbacks",
    "messaging_optins",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "message_reactions",
    "messaging_referrals",
    "standby",
];

type Shared = Arc<Mutex<Inner>>;

struct Req {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Bytes,
}

impl Req {
    fn param(&self, k: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .or_else(|| form_param(&self.body, k))
    }
}

fn form_param(body: &[u8], k: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if text.trim_start().starts_with('{') {
        return None;
    }
    parse_query(text)
        .into_iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v)
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn handle_node(
    State(state): State<Shared>,
    method: Method,
    Path((_v, node)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    handle(state, method, format!("/{node}"), q, body).await
}

async fn handle_edge(
    State(state): State<Shared>,
    method: Method,
    Path((_v, node, edge)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    handle(state, method, format!("/{node}/{edge}"), q, body).await
}

async fn handle(
    state: Shared,
    method: Method,
    path: String,
    q: Option<String>,
    body: Bytes,
) -> Response {
    let latency = state.lock().expect("fake state lock").latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let req = Req {
        method,
        path,
        query: q.as_deref().map(parse_query).unwrap_or_default(),
        body,
    };
    let mut s = state.lock().expect("fake state lock");
    let mut resp = match s.take_fault(&req) {
        Some(fault) => fault_response(&fault),
        None => s.route(&req),
    };
    if let Some(p) = s.app_usage_percent {
        let v = format!(r#"{{"call_count":{p},"total_time":{p},"total_cputime":{p}}}"#);
        resp.headers_mut().insert(
            "x-app-usage",
            HeaderValue::from_str(&v).expect("ascii header"),
        );
    }
    s.log.push(LoggedRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status: resp.status().as_u16(),
    });
    resp
}

fn fb_error(status: u16, code: i64, subcode: Option<i64>, message: &str) -> Response {
    let mut e = json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AFakeTrace1"});
    if let Some(sc) = subcode {
        e["error_subcode"] = sc.into();
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({ "error": e })),
    )
        .into_response()
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::Http(status) => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "Too Many Requests",
        )
            .into_response(),
        Fault::ServerError(status) => {
            let mut r = fb_error(
                *status,
                2,
                None,
                "An unexpected error has occurred. Please retry your request later.",
            );
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        Fault::Throttle {
            code,
            regain_minutes,
        } => {
            let message = match code {
                4 => "(#4) Application request limit reached",
                17 => "(#17) User request limit reached",
                32 => "(#32) Page request limit reached",
                613 => "(#613) Calls to this api have exceeded the rate limit.",
                80001 => {
                    "(#80001) There have been too many calls to this Page account. Wait a bit and try again."
                }
                80006 => {
                    "(#80006) There have been too many messenger api calls to this Page account. Wait a bit and try again."
                }
                _ => "Rate limit reached",
            };
            let mut r = fb_error(400, *code, None, message);
            let usage = format!(
                r#"{{"1":[{{"type":"pages","call_count":100,"total_cputime":20,"total_time":20,"estimated_time_to_regain_access":{regain_minutes}}}]}}"#
            );
            r.headers_mut().insert(
                "x-business-use-case-usage",
                HeaderValue::from_str(&usage).expect("ascii header"),
            );
            r
        }
        Fault::TokenInvalid { subcode } => fb_error(
            400,
            190,
            *subcode,
            "Error validating access token: The session has been invalidated.",
        ),
        Fault::Error {
            status,
            code,
            subcode,
            message,
        } => fb_error(*status, *code, *subcode, message),
    }
}

fn graph_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+0000").to_string()
}

fn paged(data: Vec<Value>, next: Option<String>) -> Response {
    let mut body = json!({ "data": data });
    if let Some(n) = next {
        body["paging"] = json!({"cursors": {"after": "x", "before": "y"}, "next": n});
    }
    axum::Json(body).into_response()
}

/// `messages.limit(N)` in a `fields` value.
fn nested_limit(fields: &str) -> Option<usize> {
    let start = fields.find("messages.limit(")? + "messages.limit(".len();
    let end = fields[start..].find(')')? + start;
    fields[start..end].parse().ok()
}

fn offset(req: &Req) -> usize {
    req.param("after")
        .and_then(|a| a.strip_prefix('c').and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

impl Inner {
    fn take_fault(&mut self, req: &Req) -> Option<Fault> {
        let rule = self
            .faults
            .iter_mut()
            .find(|r| r.remaining != Some(0) && r.matcher.matches(&req.method, &req.path))?;
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        Some(rule.fault.clone())
    }

    fn route(&mut self, req: &Req) -> Response {
        let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        match (req.method.clone(), segs.as_slice()) {
            (Method::GET, ["oauth", "access_token"]) => self.oauth(req),
            (Method::GET, ["me", "accounts"]) => self.accounts(req),
            (Method::GET, [page]) => self.page_node(req, page),
            (Method::GET, [page, "conversations"]) => self.conversations(req, page),
            (Method::GET, [conv, "messages"]) if conv.starts_with("t_") => self.nested(req, conv),
            (Method::GET, [page, "subscribed_apps"]) => self.subscribed_apps(req, page),
            (Method::POST, [page, "subscribed_apps"]) => self.subscribe(req, page),
            (Method::POST, [page, "messages"]) => self.send(req, page),
            _ => fb_error(
                400,
                100,
                Some(33),
                "Unsupported request - method type or path not supported by the fake",
            ),
        }
    }

    /// Checks the page token (and `appsecret_proof` when sent).
    #[allow(clippy::result_large_err)] // the error is the ready answer
    fn auth_page(&self, req: &Req, page: &str) -> Result<(), Response> {
        let Some(p) = self.pages.get(page) else {
            return Err(fb_error(
                400,
                100,
                Some(33),
                "Object does not exist, cannot be loaded due to missing permissions, or does not support this operation",
            ));
        };
        let token = req.param("access_token").unwrap_or_default();
        if token.is_empty() {
            return Err(fb_error(
                400,
                104,
                None,
                "An access token is required to request this resource.",
            ));
        }
        if p.revoked {
            return Err(fb_error(
                400,
                190,
                Some(460),
                "Error validating access token: The session has been invalidated because the user changed their password.",
            ));
        }
        if token != p.token {
            // Facebook echoes a malformed token in its message: callers must scrub it.
            return Err(fb_error(
                400,
                190,
                None,
                &format!("Malformed access token {token}"),
            ));
        }
        self.check_proof(req, &token)
    }

    #[allow(clippy::result_large_err)]
    fn check_proof(&self, req: &Req, token: &str) -> Result<(), Response> {
        if let Some(proof) = req.param("appsecret_proof") {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(self.app_secret.as_bytes()).expect("any key");
            mac.update(token.as_bytes());
            if hex::encode(mac.finalize().into_bytes()) != proof {
                return Err(fb_error(
                    400,
                    100,
                    None,
                    "Invalid appsecret_proof provided in the API argument",
                ));
            }
        }
        Ok(())
    }

    fn page_node(&self, req: &Req, page: &str) -> Response {
        if let Err(r) = self.auth_page(req, page) {
            return r;
        }
        let p = &self.pages[page];
        let wanted = req.param("fields").unwrap_or_else(|| "id,name".into());
        let mut out = serde_json::Map::new();
        for f in wanted.split(',') {
            if let Some(v) = p.fields.get(f) {
                out.insert(f.into(), v.clone());
            }
        }
        out.insert("id".into(), page.into());
        axum::Json(Value::Object(out)).into_response()
    }

    fn message_json(&self, page: &str, conv: &FakeConversation, m: &FakeMessage) -> Value {
        let page_name = self.pages[page]
            .fields
            .get("name")
            .cloned()
            .unwrap_or(Value::Null);
        let page_p =
            json!({"id": page, "name": page_name, "email": format!("{page}@facebook.com")});
        let cust = json!({"id": conv.psid, "name": conv.customer_name, "email": format!("{}@facebook.com", conv.psid)});
        let (from, to) = if m.from_page {
            (page_p, cust)
        } else {
            (cust, page_p)
        };
        let mut v = json!({
            "id": m.id,
            "created_time": graph_time(m.created),
            "from": from,
            "to": {"data": [to]},
            "message": m.text,
        });
        if let Some((mime, url)) = &m.attachment {
            let mut a = json!({"id": format!("att_{}", m.id), "mime_type": mime, "name": "file"});
            if mime.starts_with("image/") {
                a["image_data"] =
                    json!({"url": url, "preview_url": url, "width": 100, "height": 100});
            } else if mime.starts_with("video/") {
                a["video_data"] =
                    json!({"url": url, "preview_url": url, "width": 100, "height": 100});
            } else {
                a["file_url"] = url.clone().into();
            }
            v["attachments"] = json!({"data": [a]});
        }
        v
    }

    /// One nested messages page starting at `from` of the readable ones.
    fn messages_page(
        &self,
        page: &str,
        conv: &FakeConversation,
        from: usize,
        limit: usize,
        token: &str,
    ) -> Value {
        let readable = conv.readable();
        let size = limit.min(self.nested_page_size).max(1);
        let chunk: Vec<Value> = readable
            .iter()
            .skip(from)
            .take(size)
            .map(|m| self.message_json(page, conv, m))
            .collect();
        let mut out = json!({"data": chunk});
        if from + size < readable.len() {
            out["paging"] = json!({
                "cursors": {"after": format!("c{}", from + size)},
                "next": format!(
                    "{}/{}/messages?fields=id%2Cmessage%2Cfrom%2Cto%2Ccreated_time%2Cattachments&limit={limit}&after=c{}&access_token={}",
                    self.base_url, conv.id, from + size, encode(token)
                ),
            });
        }
        out
    }

    fn conversations(&self, req: &Req, page: &str) -> Response {
        if let Err(r) = self.auth_page(req, page) {
            return r;
        }
        let token = req.param("access_token").unwrap_or_default();
        let fields = req.param("fields").unwrap_or_default();
        let mut convs: Vec<&FakeConversation> = self.pages[page].conversations.iter().collect();
        convs.sort_by(|a, b| b.updated().cmp(&a.updated()).then(a.id.cmp(&b.id)));
        let size = req
            .param("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(self.conversations_page_size)
            .min(self.conversations_page_size);
        let from = offset(req);
        let is_last = from + size >= convs.len();
        let next_url = |after: usize, extra: &str| {
            format!(
                "{}/{page}/conversations?platform=messenger&fields={}&limit={size}&after=c{after}{extra}&access_token={}",
                self.base_url,
                encode(&fields),
                encode(&token)
            )
        };
        if is_last && self.empty_page_before_last && from > 0 && req.param("e").is_none() {
            return paged(Vec::new(), Some(next_url(from, "&e=1")));
        }
        let data: Vec<Value> = convs
            .iter()
            .skip(from)
            .take(size)
            .map(|c| {
                let mut v = json!({
                    "id": c.id,
                    "updated_time": c.updated().map(graph_time),
                    "participants": {"data": [
                        {"id": c.psid, "name": c.customer_name, "email": format!("{}@facebook.com", c.psid)},
                        {"id": page, "name": self.pages[page].fields.get("name"), "email": format!("{page}@facebook.com")},
                    ]},
                });
                if fields.contains("messages") {
                    let limit = nested_limit(&fields).unwrap_or(25);
                    v["messages"] = self.messages_page(page, c, 0, limit, &token);
                }
                v
            })
            .collect();
        paged(data, (!is_last).then(|| next_url(from + size, "")))
    }

    fn nested(&self, req: &Req, conv_id: &str) -> Response {
        let Some((page, conv)) = self.pages.iter().find_map(|(pid, p)| {
            p.conversations
                .iter()
                .find(|c| c.id == conv_id)
                .map(|c| (pid.clone(), c))
        }) else {
            return fb_error(400, 100, Some(33), "Unsupported get request.");
        };
        if let Err(r) = self.auth_page(req, &page) {
            return r;
        }
        let token = req.param("access_token").unwrap_or_default();
        let limit = req
            .param("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(25);
        axum::Json(self.messages_page(&page, conv, offset(req), limit, &token)).into_response()
    }

    fn subscribed_apps(&self, req: &Req, page: &str) -> Response {
        if let Err(r) = self.auth_page(req, page) {
            return r;
        }
        let data = match &self.pages[page].subscribed_fields {
            Some(f) => vec![json!({"id": self.app_id, "name": "pagesync", "subscribed_fields": f})],
            None => Vec::new(),
        };
        paged(data, None)
    }

    fn subscribe(&mut self, req: &Req, page: &str) -> Response {
        if let Err(r) = self.auth_page(req, page) {
            return r;
        }
        let Some(fields) = req.param("subscribed_fields") else {
            return fb_error(
                400,
                100,
                None,
                "(#100) The parameter subscribed_fields is required",
            );
        };
        let fields: Vec<String> = fields.split(',').map(|s| s.trim().to_owned()).collect();
        self.pages.get_mut(page).expect("checked").subscribed_fields = Some(fields);
        axum::Json(json!({"success": true})).into_response()
    }

    fn send(&mut self, req: &Req, page: &str) -> Response {
        if let Err(r) = self.auth_page(req, page) {
            return r;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return fb_error(400, 100, None, "(#100) Invalid JSON body");
        };
        let psid = body["recipient"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let text = body["message"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let messaging_type = body["messaging_type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let tag = body["tag"].as_str().map(str::to_owned);
        let now = Utc::now();
        let Some(conv) = self.pages[page]
            .conversations
            .iter()
            .find(|c| c.psid == psid)
        else {
            return fb_error(400, 100, Some(2018001), "(#100) No matching user found");
        };
        let last_customer = conv
            .messages
            .iter()
            .filter(|m| !m.from_page)
            .map(|m| m.created)
            .max();
        let age = last_customer.map(|t| now - t);
        let within = |h: i64| age.is_some_and(|a| a <= chrono::Duration::hours(h));
        let allowed = match (messaging_type.as_str(), tag.as_deref()) {
            ("RESPONSE" | "UPDATE", _) => within(24),
            ("MESSAGE_TAG", Some("HUMAN_AGENT")) => within(24 * 7),
            ("MESSAGE_TAG", Some(_)) => {
                return fb_error(
                    400,
                    100,
                    None,
                    "(#100) This message tag is no longer supported",
                );
            }
            _ => return fb_error(400, 100, None, "(#100) messaging_type is required"),
        };
        if !allowed {
            return fb_error(
                400,
                10,
                Some(2018278),
                "(#10) This message is sent outside of allowed window.",
            );
        }
        let mid = format!("m_sent_{}", self.next_id);
        self.next_id += 1;
        let conv = self
            .pages
            .get_mut(page)
            .expect("checked")
            .conversations
            .iter_mut()
            .find(|c| c.psid == psid)
            .expect("checked");
        conv.messages.push(FakeMessage::page(&mid, &text, now));
        self.sent.push(SentMessage {
            page_id: page.into(),
            psid: psid.clone(),
            text,
            messaging_type,
            tag,
            message_id: mid.clone(),
        });
        axum::Json(json!({"recipient_id": psid, "message_id": mid})).into_response()
    }

    fn accounts(&self, req: &Req) -> Response {
        let token = req.param("access_token").unwrap_or_default();
        let Some(pages) = self.users.get(&token) else {
            return fb_error(
                400,
                190,
                None,
                "Invalid OAuth access token - Cannot parse access token",
            );
        };
        if let Err(r) = self.check_proof(req, &token) {
            return r;
        }
        let from = offset(req);
        let size = self.accounts_page_size;
        let data: Vec<Value> = pages
            .iter()
            .skip(from)
            .take(size)
            .filter_map(|id| self.pages.get(id).map(|p| (id, p)))
            .map(|(id, p)| {
                json!({
                    "id": id, "name": p.fields.get("name"), "category": p.fields.get("category"),
                    "category_list": p.fields.get("category_list"),
                    "tasks": ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"],
                    "access_token": p.token,
                })
            })
            .collect();
        let next = (from + size < pages.len()).then(|| {
            format!(
                "{}/me/accounts?limit={size}&after=c{}&access_token={}",
                self.base_url,
                from + size,
                encode(&token)
            )
        });
        paged(data, next)
    }

    fn oauth(&mut self, req: &Req) -> Response {
        if req.param("client_id").as_deref() != Some(self.app_id.as_str())
            || req.param("client_secret").as_deref() != Some(self.app_secret.as_str())
        {
            return fb_error(400, 1, None, "Error validating client secret.");
        }
        let grant = |token: &str, expires: i64| {
            axum::Json(
                json!({"access_token": token, "token_type": "bearer", "expires_in": expires}),
            )
            .into_response()
        };
        if let Some(code) = req.param("code") {
            if req.param("redirect_uri").is_none() {
                return fb_error(400, 100, None, "Missing redirect_uri parameter.");
            }
            return match self.codes.remove(&code) {
                Some(token) => grant(&token, 5183976),
                None => fb_error(400, 100, Some(36007), "Invalid verification code format."),
            };
        }
        if req.param("grant_type").as_deref() == Some("fb_exchange_token") {
            let short = req.param("fb_exchange_token").unwrap_or_default();
            return match self.users.get(&short).cloned() {
                Some(pages) => {
                    let long = format!("{short}-long-lived");
                    self.users.insert(long.clone(), pages);
                    grant(&long, 5183944)
                }
                None => fb_error(
                    400,
                    190,
                    None,
                    "Invalid OAuth access token - Cannot parse access token",
                ),
            };
        }
        fb_error(400, 100, None, "Missing code or grant_type")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_round_trip_through_encode_and_decode() {
        let s = "messages.limit(20){id,message}";
        assert_eq!(decode(&encode(s)), s);
        assert_eq!(nested_limit(s), Some(20));
        assert_eq!(decode("a+b%2Cc"), "a b,c");
    }
}
