//! Consumer lag from JetStream itself: the durable consumer's pending and
//! unacknowledged counts, asked every interval. `pagesync_projector_consumer_lag`
//! is set from the messages the projector receives, so it freezes when nothing is
//! delivered (the projector stalled, or stopped fetching); these do not.

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use pagesync_runtime::CancellationToken;

pub const PENDING: &str = "pagesync_projector_consumer_pending";
pub const ACK_PENDING: &str = "pagesync_projector_consumer_ack_pending";

/// How often the consumer is asked.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Sets the two gauges every `every` until `shutdown`; a failed ask is logged and
/// the gauges keep their last value.
pub async fn watch(
    mut consumer: PullConsumer,
    stream: String,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match consumer.info().await {
            Ok(info) => {
                metrics::gauge!(PENDING, "stream" => stream.clone()).set(info.num_pending as f64);
                metrics::gauge!(ACK_PENDING, "stream" => stream.clone())
                    .set(info.num_ack_pending as f64);
            }
            Err(e) => {
                tracing::debug!(error = %e, "consumer info unavailable; lag gauges not updated")
            }
        }
    }
}
