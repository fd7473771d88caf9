//! The inbox: live updates, a thread, a reply, the window, open/closed, tenancy.

use chrono::Utc;
use reqwest::Method;
use serde_json::json;

use pagesync_fake_graph::FakeMessage;

use crate::driver::Browser;
use crate::support::{Auth, OPERATOR_TOKEN, PAGE_A, PAGE_B, TestApp};

/// A signed Messenger delivery of one customer message, `hours_ago` old.
pub async fn customer_writes(t: &TestApp, psid: &str, mid: &str, text: &str, hours_ago: i64) {
    let ts = Utc::now().timestamp_millis() - hours_ago * 3_600_000;
    let body = serde_json::to_vec(&json!({"object": "page", "entry": [{
        "id": PAGE_A.0, "time": ts, "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": PAGE_A.0}, "timestamp": ts,
            "message": {"mid": mid, "text": text}}]}]}))
    .unwrap();
    let secret = secrecy::SecretString::from(pagesync_fake_graph::FakeGraph::APP_SECRET.to_owned());
    let signature = pagesync_schema::signature::AppSecret::new(&secret).sign(&body);
    let resp = t
        .http
        .post(t.ingest_url())
        .header("X-Hub-Signature-256", signature)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Facebook knows the message too (its Send API checks the window itself).
    let at = chrono::DateTime::from_timestamp_millis(ts).unwrap();
    t.fake
        .add_message(PAGE_A.0, psid, FakeMessage::customer(mid, text, at));
}

pub async fn log_in_as_operator(b: &Browser, t: &TestApp) {
    b.goto(&t.url("/login")).await;
    b.fill("#operator_token", OPERATOR_TOKEN).await;
    b.click("form[action='/login'] button").await;
    b.find("#conversations").await;
}

pub async fn is_disabled(b: &Browser, css: &str) -> bool {
    !b.find(css).await.is_enabled().await.unwrap()
}

/// Page A connected by hand with the operator token, as the Settings form does.
pub async fn connect_page_a(t: &TestApp) {
    t.fake.add_page(PAGE_A.0, PAGE_A.1, PAGE_A.2);
    let (status, _) = t
        .api(
            Method::PUT,
            &format!("/api/integrations/facebook/{}", PAGE_A.0),
            Auth::Operator,
            Some(json!({"access_token": PAGE_A.2, "active": true})),
        )
        .await;
    assert_eq!(status, 201);
}

pub fn conversation(psid: &str) -> String {
    format!("#conversations [data-key='{}/{psid}']", PAGE_A.0)
}

#[tokio::test]
async fn a_webhook_appears_live_is_answered_closed_and_reopened_and_another_user_sees_nothing() {
    let t = TestApp::spawn_with_pipeline().await;
    connect_page_a(&t).await;
    let b = Browser::start().await;
    log_in_as_operator(&b, &t).await;
    b.text_contains("#live-state", "Live").await;

    // A customer writes: the conversation appears without a reload.
    customer_writes(
        &t,
        "cust-1",
        "m_browser_1",
        "Hello from the browser test",
        1,
    )
    .await;
    b.text_contains(&conversation("cust-1"), "Hello from the browser test")
        .await;
    assert!(
        !b.find("#more").await.is_displayed().await.unwrap(),
        "one conversation: no further page to show"
    );
    b.click(&conversation("cust-1")).await;
    b.text_contains("#messages", "Hello from the browser test")
        .await;
    b.text_contains("#window", "Reply window: closes in").await;
    b.screenshot("inbox-thread").await;

    // A reply goes out through the Send API and shows as outgoing.
    b.fill("#reply-text", "Thanks, we are on it").await;
    b.click("#send").await;
    b.text_contains("#messages li.out", "Thanks, we are on it")
        .await;
    b.text_contains("#messages li.out", "Sent from pagesync")
        .await;

    // Close, then reopen.
    b.click("#toggle-status").await;
    b.text_contains("#thread-status", "Closed").await;
    b.click("#toggle-status").await;
    b.text_contains("#thread-status", "Open").await;

    // A customer who last wrote 30 hours ago: the window is closed, the box disabled.
    customer_writes(&t, "cust-old", "m_browser_old", "Anyone there?", 30).await;
    b.text_contains(&conversation("cust-old"), "Anyone there?")
        .await;
    b.screenshot("inbox").await;
    b.click(&conversation("cust-old")).await;
    b.text_contains("#window", "Replies are closed").await;
    assert!(is_disabled(&b, "#reply-text").await && is_disabled(&b, "#send").await);
    b.close().await;

    // Another user's inbox shows none of it.
    let (cookie, status, _) = t.connect("Bob", &[PAGE_B]).await;
    assert_eq!(status, 200);
    let bob = Browser::start().await;
    bob.goto(&t.url("/login")).await;
    bob.add_cookie(&cookie).await;
    bob.goto(&t.url("/inbox")).await;
    // Bob's own page has the connect self-test's conversation; once it shows, the
    // list has loaded, and it holds nothing of page A.
    bob.find(&format!(
        "#conversations [data-key='{}/test_user_id']",
        PAGE_B.0
    ))
    .await;
    bob.text_lacks("#conversations", "Hello from the browser test")
        .await;
    bob.text_lacks("#conversations", "Anyone there?").await;
    bob.close().await;
}
