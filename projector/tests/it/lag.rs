//! The consumer lag gauges come from JetStream's own counts, asked on a timer, so
//! they show a backlog even while nothing is delivered to the projector.

use std::time::Duration;

use pagesync_projector::consumer::{ConsumerSettings, durable};
use pagesync_projector::lag;
use pagesync_runtime::CancellationToken;
use pagesync_schema::Source;
use pagesync_testkit::wait;

use crate::support::{TestProjector, message};

fn gauge(name: &str, stream: &str) -> Option<f64> {
    let needle = format!("{name}{{stream=\"{stream}\"}} ");
    pagesync_runtime::ops::metrics_handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&needle).map(|v| v.trim().parse().unwrap()))
}

#[tokio::test]
async fn the_pending_gauge_shows_a_backlog_nothing_is_fetching() {
    // Arrange: five messages behind a durable consumer no one fetches from.
    let p = TestProjector::new().await;
    let events: Vec<_> = (0..5)
        .map(|i| {
            message(
                Source::Ingest,
                "101",
                "u1",
                &format!("m{i}"),
                1_700_000_000_000 + i,
                "x",
            )
        })
        .collect();
    p.publish(&events).await;
    let config = p.config();
    let stream = p.nats.js.get_stream(p.nats.stream.as_str()).await.unwrap();
    let settings = ConsumerSettings {
        name: config.projector_consumer.clone(),
        filter_subject: config.nats.nats_subject_prefix.wildcard(),
        batch_size: 10,
        fetch_expiry: Duration::from_millis(200),
        max_ack_pending: 100,
        ack_wait: Duration::from_secs(30),
        owner_check_interval: Duration::from_secs(5),
    };
    let consumer = durable(&stream, &settings).await.unwrap();
    let stop = CancellationToken::new();
    let name = p.nats.stream.to_string();

    // Act
    let watching = tokio::spawn(lag::watch(
        consumer,
        name.clone(),
        Duration::from_millis(50),
        stop.clone(),
    ));

    // Assert
    wait::until(Duration::from_secs(10), "pending gauge at 5", || async {
        gauge(lag::PENDING, &name) == Some(5.0)
    })
    .await;
    assert_eq!(gauge(lag::ACK_PENDING, &name), Some(0.0));
    stop.cancel();
    watching.await.unwrap();
}
