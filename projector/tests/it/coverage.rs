//! Webhook coverage (issue 11): where each message was first seen, by stream order,
//! whatever copy wins, and the same after a rebuild.

use pagesync_schema::{EventType, Source};
use serde_json::json;

use crate::support::{TestProjector, event, message, own_metrics};

const PAGE: &str = "101";
const PSID: &str = "u1";
const T: i64 = 1_700_000_000_000;

async fn first_seen(p: &TestProjector) -> Vec<(String, String)> {
    p.db.pairs("SELECT mid, origin FROM message_first_seen ORDER BY mid")
        .await
}

#[tokio::test]
async fn each_message_keeps_the_origin_of_its_first_copy_in_the_stream_even_after_a_rebuild() {
    // Arrange
    let (_own, metrics) = own_metrics();
    let p = TestProjector::new().await;
    let copy = |source, mid: &str| message(source, PAGE, PSID, mid, T, mid);
    let sent = event(
        EventType::MessageEcho,
        Source::OauthApi,
        "m_send",
        PAGE,
        Some(PSID),
        T,
        json!({"sender": {"id": PAGE}, "recipient": {"id": PSID}, "timestamp": T,
               "message": {"mid": "m_send", "text": "reply", "is_echo": true}}),
    );

    // Act: webhook only, poll only, a send; webhook then poll and poll then webhook,
    // both in separate batches and within one batch.
    p.publish(&[
        copy(Source::Ingest, "m_hook"),
        copy(Source::Poller, "m_poll"),
        sent,
        copy(Source::Ingest, "m_hook_first"),
        copy(Source::Poller, "m_poll_first"),
        copy(Source::Poller, "m_poll_first_same_batch"),
        copy(Source::Ingest, "m_poll_first_same_batch"),
    ])
    .await;
    p.drain().await;
    p.publish(&[
        copy(Source::Poller, "m_hook_first"),
        copy(Source::Ingest, "m_poll_first"),
    ])
    .await;
    p.drain().await;

    // Assert
    let expected: Vec<(String, String)> = [
        ("m_hook", "webhook"),
        ("m_hook_first", "webhook"),
        ("m_poll", "poll"),
        ("m_poll_first", "poll"),
        ("m_poll_first_same_batch", "poll"),
        ("m_send", "send"),
    ]
    .map(|(m, o)| (m.to_owned(), o.to_owned()))
    .into();
    assert_eq!(first_seen(&p).await, expected);
    // The winning copy is still the webhook's.
    assert_eq!(
        p.count("SELECT count(*) FROM messages WHERE mid = 'm_poll_first' AND source = 'webhook'")
            .await,
        1
    );
    p.rebuild().await;
    assert_eq!(first_seen(&p).await, expected);
    // Counted by platform and origin, once: the rebuild's replay is not news.
    let metrics = metrics.render();
    let count = |origin: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("pagesync_projector_messages_first_seen_total{"))
            .filter(|l| {
                l.contains("platform=\"messenger\"") && l.contains(&format!("origin=\"{origin}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(count("poll"), 3.0, "{metrics}");
    assert_eq!(count("webhook"), 2.0, "{metrics}");
    assert_eq!(count("send"), 1.0, "{metrics}");
}
