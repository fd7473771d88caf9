//! What the reply, idempotency and status tests share: a page connected by hand,
//! customer messages at times the test chooses (through the real ingest and
//! projector, and in the fake Graph API so its Send API window agrees), replies.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pagesync_fake_graph::{FakeGraph, FakeMessage};
use pagesync_schema::signature::AppSecret;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, FakePage, OPERATOR_TOKEN, TestApp};

/// The customer of most tests.
pub const CUSTOMER: &str = "cust-4711";

/// Connects `page` with its token as the operator (PUT integration).
pub async fn connect_by_hand(t: &TestApp, page: FakePage) {
    t.fake.add_page(page.0, page.1, page.2);
    let (status, body) = t
        .api(
            Method::PUT,
            &format!("/api/integrations/facebook/{}", page.0),
            Auth::Operator,
            Some(json!({"access_token": page.2, "active": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// POSTs a signed delivery to the pipeline's ingest.
pub async fn post_webhook(t: &TestApp, delivery: &Value) {
    let body = delivery.to_string();
    let signer = AppSecret::new(&secrecy::SecretString::from(
        FakeGraph::APP_SECRET.to_owned(),
    ));
    let status = reqwest::Client::new()
        .post(t.ingest_url())
        .header("x-hub-signature-256", signer.sign(body.as_bytes()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "ingest took the delivery");
}

fn delivery(page: &str, item: Value) -> Value {
    json!({"object": "page", "entry": [{"id": page, "time": Utc::now().timestamp_millis(), "messaging": [item]}]})
}

/// The customer writes `mid` at `at` (webhook and fake), and it is projected.
pub async fn customer_writes(t: &TestApp, page: &str, psid: &str, mid: &str, at: DateTime<Utc>) {
    t.fake
        .add_message(page, psid, FakeMessage::customer(mid, "hello?", at));
    let item = json!({"sender": {"id": psid}, "recipient": {"id": page},
        "timestamp": at.timestamp_millis(), "message": {"mid": mid, "text": "hello?"}});
    post_webhook(t, &delivery(page, item)).await;
    wait_for(
        t,
        &format!("SELECT count(*) FROM messages WHERE mid = '{mid}'"),
        1,
    )
    .await;
}

/// Facebook's echo webhook of a page message `mid` (sent by app `app_id`) at `at`.
pub async fn echo_webhook(
    t: &TestApp,
    page: &str,
    psid: &str,
    mid: &str,
    app_id: Value,
    at: DateTime<Utc>,
) {
    let item = json!({"sender": {"id": page}, "recipient": {"id": psid},
        "timestamp": at.timestamp_millis(),
        "message": {"mid": mid, "is_echo": true, "app_id": app_id, "text": "from the page"}});
    post_webhook(t, &delivery(page, item)).await;
}

/// Waits (bounded) until the count query answers `expected`.
pub async fn wait_for(t: &TestApp, sql: &str, expected: i64) {
    pagesync_testkit::wait::until(Duration::from_secs(15), sql, || async {
        t.count(sql).await == expected
    })
    .await;
}

/// `POST .../messages` as the operator, with an optional Idempotency-Key:
/// (status, body, whether the answer was a replay).
pub async fn reply(
    t: &TestApp,
    page: &str,
    psid: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value, bool) {
    let mut req = t
        .http
        .post(t.url(&format!("/api/conversations/{page}/{psid}/messages")))
        .bearer_auth(OPERATOR_TOKEN)
        .json(body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let resp = req.send().await.unwrap();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    let (status, body) = t.read(resp).await;
    (status, body, replayed)
}

/// What the fake's Send API was asked, in order.
pub fn send_calls(t: &TestApp) -> usize {
    t.fake
        .requests()
        .iter()
        .filter(|r| r.method == Method::POST && r.path.ends_with("/messages"))
        .count()
}
