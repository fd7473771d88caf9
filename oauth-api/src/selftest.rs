//! The connect self-test (contract §6). Webhook: signed test deliveries posted to
//! `FACEBOOK_WEBHOOK_ADDRESS` (a `name` change carrying the page's current name, and
//! a text message from psid `test_user_id`), then a bounded wait until the projector
//! applied them. Polling: the one-page poll the poller runs (pagesync-pagepoll), once.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use pagesync_pagepoll::PageOutcome;
use pagesync_pagepoll::store::Integration;
use pagesync_schema::signature::AppSecret;
use pagesync_schema::{EventId, PageId, event_id};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::connect::PageSetup;

/// The psid of the self-test's message (as in Facebook's tutorial).
pub const TEST_PSID: &str = "test_user_id";

/// One line of `webhook_test` or `polling_test`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestEntry {
    pub page_id: String,
    /// `metadata` or `messages` (webhook test); `metadata` or `conversations` (polling test).
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^(metadata|messages|conversations)$")]
    pub kind: &'static str,
    pub result: TestResult,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum TestResult {
    Success,
    Error { message: String },
}

impl TestResult {
    fn from(r: Result<(), String>) -> Self {
        match r {
            Ok(()) => Self::Success,
            Err(message) => Self::Error { message },
        }
    }
}

/// Both tests of one page: (webhook entries, polling entries).
pub async fn run(state: &AppState, setup: &PageSetup) -> (Vec<TestEntry>, Vec<TestEntry>) {
    let (webhook_meta, webhook_msg, polled) = match (&setup.page, &setup.stored) {
        (Ok(page), Ok(sealed)) => {
            let webhook = async {
                match &setup.subscribed {
                    Ok(()) => {
                        futures::join!(
                            metadata_delivery(state, page, setup.name.as_deref()),
                            message_delivery(state, page)
                        )
                    }
                    Err(e) => (Err(e.clone()), Err(e.clone())),
                }
            };
            let integration = Integration {
                page_id: page.clone(),
                key_id: sealed.key_id.clone(),
                sealed_token: sealed.bytes.clone(),
                // The self-test checks the page's own (Messenger) polling.
                instagram_account: None,
            };
            let ((meta, msg), polled) = futures::join!(webhook, poll_once(state, &integration));
            (meta, msg, polled)
        }
        (Err(e), _) | (_, Err(e)) => (Err(e.clone()), Err(e.clone()), Err(e.clone())),
    };
    let page_id = &setup.raw_id;
    let entry = |test: &'static str, kind, r: Result<(), String>| {
        crate::metrics::self_test(test, kind, r.is_ok());
        TestEntry {
            page_id: page_id.clone(),
            kind,
            result: TestResult::from(r),
        }
    };
    (
        vec![
            entry("webhook", "metadata", webhook_meta),
            entry("webhook", "messages", webhook_msg),
        ],
        vec![
            entry("polling", "metadata", polled.clone()),
            entry("polling", "conversations", polled),
        ],
    )
}

/// A `name` change with the page's current name, so nothing is overwritten.
async fn metadata_delivery(
    state: &AppState,
    page: &PageId,
    name: Option<&str>,
) -> Result<(), String> {
    let name = name.ok_or("Facebook gave no page name to send")?;
    let time_ms = Utc::now().timestamp_millis();
    let value = Value::String(name.to_owned());
    let body = json!({"object": "page", "entry": [{"id": page.as_str(), "time": time_ms,
        "changes": [{"field": "name", "value": value}]}]});
    let id = event_id::for_page_change(page, "name", time_ms, &value);
    deliver_and_wait(state, &body, &id).await
}

/// A text message from `test_user_id`.
async fn message_delivery(state: &AppState, page: &PageId) -> Result<(), String> {
    let time_ms = Utc::now().timestamp_millis();
    let mid = format!(
        "m_pagesync_selftest_{page}_{time_ms}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let body = json!({"object": "page", "entry": [{"id": page.as_str(), "time": time_ms,
        "messaging": [{"sender": {"id": TEST_PSID}, "recipient": {"id": page.as_str()},
            "timestamp": time_ms, "message": {"mid": mid, "text": "pagesync connection test"}}]}]});
    let id = EventId::parse(mid).map_err(|e| e.to_string())?;
    deliver_and_wait(state, &body, &id).await
}

async fn deliver_and_wait(state: &AppState, body: &Value, id: &EventId) -> Result<(), String> {
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let signature = AppSecret::new(&state.app_secret).sign(&bytes);
    let resp = state
        .http
        .post(state.webhook_url.url().clone())
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(bytes)
        .send()
        .await
        .map_err(|e| format!("webhook endpoint unreachable: {}", e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!(
            "webhook endpoint answered HTTP {}",
            resp.status().as_u16()
        ));
    }
    wait_for_projection(state, id).await
}

/// Waits, bounded by `SELF_TEST_TIMEOUT` and by the service stopping, until the
/// projector recorded the event as applied. A database error is logged and the
/// read tried again: only its outcome reaches the answer, never the driver's text.
async fn wait_for_projection(state: &AppState, id: &EventId) -> Result<(), String> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(250))
        .without_max_times();
    let waiting = (|| applied(state, id))
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .notify(|e, _| {
            if !matches!(e, Unapplied::Pending) {
                tracing::warn!(event_id = %id, error = %e, "self-test: cannot read the projection; trying again");
            }
        });
    tokio::select! {
        waited = tokio::time::timeout(state.self_test_timeout, waiting) => match waited {
            // Retried until the deadline: an error never comes out, but is not shown if it did.
            Ok(done) => done.map_err(|_| "the projection could not be read; see oauth-api's log".to_owned()),
            Err(_) => Err(format!(
                "the test delivery was accepted but not projected within {}s; is the projector running?",
                state.self_test_timeout.as_secs()
            )),
        },
        () = state.stopping.cancelled() => {
            Err("oauth-api is stopping; connect the page again to test it".to_owned())
        }
    }
}

/// Why the test event is not (known to be) applied yet.
#[derive(Debug, thiserror::Error)]
enum Unapplied {
    #[error("not applied yet")]
    Pending,
    #[error("cannot reach Postgres: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot read applied_events: {}", pagesync_runtime::connect::db_error_text(.0))]
    Query(#[from] tokio_postgres::Error),
}

async fn applied(state: &AppState, id: &EventId) -> Result<(), Unapplied> {
    const SQL: &str = "SELECT 1 FROM applied_events WHERE event_id = $1";
    let conn = state.pool.get().await?;
    match conn.query_opt(SQL, &[&id.as_str()]).await? {
        Some(_) => Ok(()),
        None => Err(Unapplied::Pending),
    }
}

/// One poll of the page with the poller's own code.
async fn poll_once(state: &AppState, integration: &Integration) -> Result<(), String> {
    match state.poller.poll_page(integration).await {
        PageOutcome::Success { .. } => Ok(()),
        PageOutcome::NeedsReauth => {
            Err("Facebook rejected the page token (code 190); connect the page again".into())
        }
        PageOutcome::Throttled => {
            Err("Facebook is throttling this page; polling will retry later".into())
        }
        PageOutcome::Failed(reason) => Err(format!("poll failed: {reason}")),
    }
}
