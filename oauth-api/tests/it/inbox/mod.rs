//! The inbox's read side against the real pipeline: signed webhooks through
//! ingest and the projector, read back through oauth-api.

mod list;
mod live;
mod messages;

use std::time::Duration;

use pagesync_fake_graph::FakeGraph;
use pagesync_schema::signature::AppSecret;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestApp};

pub const PAGE: &str = crate::support::PAGE_A.0;
/// How long a webhook may take to become visible through the API.
pub const VISIBLE: Duration = Duration::from_secs(15);

/// Now, in ms: times near now keep the reply window open.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Posts a signed delivery of `items` for `page` to the pipeline's ingest.
pub async fn webhook(app: &TestApp, page: &str, items: Vec<Value>) {
    let body =
        json!({"object": "page", "entry": [{"id": page, "time": now_ms(), "messaging": items}]})
            .to_string();
    let secret = secrecy::SecretString::from(FakeGraph::APP_SECRET.to_owned());
    let signature = AppSecret::new(&secret).sign(body.as_bytes());
    let resp = app
        .http
        .post(app.ingest_url())
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "ingest took the delivery");
}

pub fn text(page: &str, psid: &str, mid: &str, ts: i64, text: &str) -> Value {
    json!({"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": ts,
           "message": {"mid": mid, "text": text}})
}

pub fn echo(page: &str, psid: &str, mid: &str, ts: i64, text: &str, app_id: i64) -> Value {
    json!({"sender": {"id": page}, "recipient": {"id": psid}, "timestamp": ts,
           "message": {"mid": mid, "text": text, "is_echo": true, "app_id": app_id}})
}

/// A reaction by `by` (the psid or the page) in `psid`'s conversation.
pub fn reaction(
    page: &str,
    psid: &str,
    by: &str,
    mid: &str,
    action: &str,
    emoji: &str,
    ts: i64,
) -> Value {
    let other = if by == page { psid } else { page };
    let mut r = json!({"mid": mid, "action": action});
    if action == "react" {
        r["reaction"] = "love".into();
        r["emoji"] = emoji.into();
    }
    json!({"sender": {"id": by}, "recipient": {"id": other}, "timestamp": ts, "reaction": r})
}

/// A `delivery` or `read` receipt from the customer.
pub fn receipt(page: &str, psid: &str, kind: &str, watermark: i64) -> Value {
    json!({"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": watermark,
           kind: {"watermark": watermark}})
}

/// `GET path` as the operator, expecting 200.
pub async fn get_ok(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.api(Method::GET, path, Auth::Operator, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Waits until `GET path` (as the operator) answers a body `check` accepts.
pub async fn wait_for(app: &TestApp, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + VISIBLE;
    while tokio::time::Instant::now() < deadline {
        let (status, body) = app.api(Method::GET, path, Auth::Operator, None).await;
        if status == 200 && check(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never answered as expected; last: {last}");
}

/// The psids of a list answer, in order.
pub fn psids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["psid"].as_str().unwrap().to_owned())
        .collect()
}

/// The psids `GET /api/conversations?<query>` lists, as the operator.
pub async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    psids(&get_ok(app, &format!("/api/conversations?{query}")).await)
}
