//! The shared publisher under concurrency, against a real JetStream.

use std::time::Duration;

use async_nats::jetstream;
use pagesync_schema::{Event, EventId, EventType, PageId, Publisher, Source};
use pagesync_testkit::TestNats;

fn event(n: usize) -> Event {
    Event {
        id: EventId::parse(format!("m_{n}")).unwrap(),
        event_type: EventType::Message,
        source: Source::Poller,
        page_id: Some(PageId::parse("101").unwrap()),
        psid: None,
        platform: pagesync_schema::Platform::Messenger,
        time: chrono::Utc::now(),
        received_at: chrono::Utc::now(),
        data: serde_json::value::to_raw_value(&serde_json::json!({"n": n})).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_together_above_the_inflight_limit_all_complete() {
    let nats = TestNats::new().await;
    nats.ensure_stream().await;
    // 8 publishers × 100 events against a limit of 64 unacknowledged publishes: if
    // acks were awaited only after each caller's last publish, every slot would be
    // held by callers waiting for a slot.
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(64)
        .backpressure_on_inflight(true)
        .build(nats.client.clone());
    let publisher = Publisher::new(js, nats.prefix.clone());
    let calls = (0..8).map(|caller| {
        let publisher = publisher.clone();
        let events: Vec<Event> = (0..100).map(|i| event(caller * 100 + i)).collect();
        tokio::spawn(async move { publisher.publish_all(&events, None).await })
    });
    // A bound on a hang, not a timing assertion: this takes well under a second.
    let reports = tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(calls))
        .await
        .expect("publishers deadlocked");
    let stored: usize = reports
        .into_iter()
        .map(|r| r.unwrap().unwrap().stored)
        .sum();
    assert_eq!(stored, 800);
    assert_eq!(nats.message_count().await, 800);
}
