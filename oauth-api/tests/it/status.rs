//! `PATCH /api/conversations/{page_id}/{psid}`: close, then the customer reopens.

use chrono::{Duration, Utc};
use pagesync_schema::{EventType, Source};
use reqwest::Method;
use serde_json::{Value, json};

use crate::inbox_write_support::{CUSTOMER, connect_by_hand, customer_writes, wait_for};
use crate::support::{Auth, PAGE_A, TestApp};

fn path(psid: &str) -> String {
    format!("/api/conversations/{}/{psid}", PAGE_A.0)
}

fn status_is(status: &str) -> String {
    format!(
        "SELECT count(*) FROM conversations WHERE page_id = '{}' AND psid = '{CUSTOMER}' AND status = '{status}'",
        PAGE_A.0
    )
}

#[tokio::test]
async fn closing_publishes_the_event_and_a_customer_message_reopens() {
    let t = TestApp::spawn_with_pipeline().await;
    connect_by_hand(&t, PAGE_A).await;
    customer_writes(
        &t,
        PAGE_A.0,
        CUSTOMER,
        "m_before",
        Utc::now() - Duration::minutes(5),
    )
    .await;

    let (status, body) = t
        .api(
            Method::PATCH,
            &path(CUSTOMER),
            Auth::Operator,
            Some(json!({"status": "closed"})),
        )
        .await;

    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        json!({"page_id": PAGE_A.0, "psid": CUSTOMER, "status": "closed"})
    );
    let event = t
        .nats
        .events()
        .await
        .into_iter()
        .find(|e| e.event_type == EventType::ConversationStatus)
        .expect("the status event is in the stream");
    let data: Value = serde_json::from_str(event.data.get()).unwrap();
    assert_eq!(event.source, Source::OauthApi);
    assert_eq!(data["status"], "closed");
    assert_eq!(
        event.id.as_str(),
        format!("status:{}:{CUSTOMER}:{}", PAGE_A.0, data["at"])
    );
    wait_for(&t, &status_is("closed"), 1).await;

    customer_writes(&t, PAGE_A.0, CUSTOMER, "m_after", Utc::now()).await;
    wait_for(&t, &status_is("open"), 1).await;

    let (status, _) = t
        .api(
            Method::PATCH,
            &path(CUSTOMER),
            Auth::Operator,
            Some(json!({"status": "open"})),
        )
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_bad_status_is_422_and_an_unknown_conversation_404() {
    let t = TestApp::spawn_with_pipeline().await;
    connect_by_hand(&t, PAGE_A).await;
    customer_writes(&t, PAGE_A.0, CUSTOMER, "m_s", Utc::now()).await;

    let (bad, body) = t
        .api(
            Method::PATCH,
            &path(CUSTOMER),
            Auth::Operator,
            Some(json!({"status": "snoozed"})),
        )
        .await;
    let (unknown, _) = t
        .api(
            Method::PATCH,
            &path("nobody"),
            Auth::Operator,
            Some(json!({"status": "closed"})),
        )
        .await;
    let (anonymous, _) = t
        .api(
            Method::PATCH,
            &path(CUSTOMER),
            Auth::None,
            Some(json!({"status": "closed"})),
        )
        .await;

    assert_eq!((bad, body["error"].as_str()), (422, Some("invalid_fields")));
    assert_eq!(unknown, 404);
    assert_eq!(anonymous, 401);
    assert!(
        t.nats
            .events()
            .await
            .iter()
            .all(|e| e.event_type != EventType::ConversationStatus)
    );
}
