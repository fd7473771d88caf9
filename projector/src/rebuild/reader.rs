//! Reading the stream for a replay: explicit fetches from an ephemeral consumer,
//! restarted after the last message received when a delivery goes missing.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::Stream;
use futures::StreamExt;

use crate::batch::Incoming;
use crate::consumer::incoming;
use crate::error::RunError;

/// Most messages asked for by one fetch of the replay.
const REPLAY_FETCH: usize = 5_000;

/// How long the replay waits for messages before calling the stream stalled.
const REPLAY_STALL: Duration = Duration::from_secs(30);

/// Pause before reading again after a NATS error.
const REPLAY_RETRY: Duration = Duration::from_millis(250);

pub(super) type Collected = Result<(Vec<Incoming>, u64), RunError>;

/// Where a read of the stream is.
struct Cursor {
    /// The highest stream sequence received.
    seq: u64,
    consumer: PullConsumer,
    /// Deliveries of `consumer` received (its consumer sequence).
    delivered: u64,
    batch: Vec<Incoming>,
    progress_at: Instant,
}

/// Reads the stream up to sequence `last` with explicit fetches from an ephemeral
/// consumer without acknowledgements, checking that no delivery is missing (a gap
/// in the consumer sequence restarts it after the last message received).
pub(super) struct Reader {
    pub stream: Stream,
    pub filter_subject: String,
    pub last: u64,
}

impl Reader {
    /// Sends batches of `size` messages (the last one shorter) with the highest
    /// sequence read so far; ends after `last`, or with an error.
    pub async fn run(self, size: usize, tx: tokio::sync::mpsc::Sender<Collected>) {
        if let Err(e) = self.read(size, &tx).await
            && let Err(tokio::sync::mpsc::error::SendError(Err(e))) = tx.send(Err(e)).await
        {
            // The replay ended first (shutdown, or its own error): nobody to tell.
            tracing::debug!(error = %crate::error::chain(&e), "replay reader stopped");
        }
    }

    async fn read(
        &self,
        size: usize,
        tx: &tokio::sync::mpsc::Sender<Collected>,
    ) -> Result<(), RunError> {
        let mut r = Cursor {
            seq: 0,
            consumer: self.consumer(0).await?,
            delivered: 0,
            batch: Vec::with_capacity(size),
            progress_at: Instant::now(),
        };
        while r.seq < self.last {
            let restart = self.read_some(&mut r, size).await;
            if r.progress_at.elapsed() >= REPLAY_STALL {
                return Err(RunError::ReplayStalled {
                    seconds: REPLAY_STALL.as_secs(),
                    seq: r.seq,
                    reason: restart.unwrap_or_else(|| "no message arrived".into()),
                });
            }
            if let Some(reason) = restart {
                self.restart(&mut r, &reason).await;
            }
            if r.batch.len() >= size || (r.seq >= self.last && !r.batch.is_empty()) {
                let full = std::mem::replace(&mut r.batch, Vec::with_capacity(size));
                if tx.send(Ok((full, r.seq))).await.is_err() {
                    break;
                }
            }
        }
        self.remove(&r.consumer).await;
        Ok(())
    }

    /// Fetches what comes next into the batch; returns why the read must start
    /// again after the last message received, when it must. A NATS error (the
    /// server restarting, say) restarts it, like a gap; only a stall ends the rebuild.
    async fn read_some(&self, r: &mut Cursor, size: usize) -> Option<String> {
        let remaining = usize::try_from(self.last - r.seq).unwrap_or(usize::MAX);
        let want = REPLAY_FETCH.min(size - r.batch.len()).min(remaining);
        let fetched = match r
            .consumer
            .fetch()
            .max_messages(want)
            .expires(Duration::from_secs(1))
            .messages()
            .await
        {
            Ok(f) => f.collect::<Vec<_>>().await,
            Err(e) => return Some(e.to_string()),
        };
        if fetched.is_empty() {
            return match r.consumer.info().await {
                // Nothing left for the filter (the last messages may be on other subjects).
                Ok(info) if info.num_pending == 0 => {
                    r.seq = self.last;
                    None
                }
                Ok(_) => None,
                // The consumer is gone (a restarted server forgets in-memory ones).
                Err(e) => Some(e.to_string()),
            };
        }
        for m in fetched {
            let m = match m {
                Ok(m) => m,
                Err(e) => return Some(e.to_string()),
            };
            let Ok(info) = m.info() else {
                return Some("a delivery without its metadata".into());
            };
            if info.consumer_sequence != r.delivered + 1 {
                return Some("a delivery is missing".into());
            }
            r.delivered += 1;
            r.seq = info.stream_sequence;
            r.progress_at = Instant::now();
            if r.seq <= self.last {
                match incoming(&m) {
                    Ok(m) => r.batch.push(m),
                    Err(e) => return Some(e.to_string()),
                }
            }
        }
        None
    }

    /// Starts reading again after the last message received, on a new consumer.
    async fn restart(&self, r: &mut Cursor, reason: &str) {
        tracing::warn!(after = r.seq, %reason, "replay reading again after the last message received");
        self.remove(&r.consumer).await;
        tokio::time::sleep(REPLAY_RETRY).await;
        match self.consumer(r.seq).await {
            Ok(c) => r.consumer = c,
            // Retried on the next turn, until the stall limit.
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "replay consumer not created; retrying")
            }
        }
        r.delivered = 0;
    }

    /// Deletes an ephemeral consumer of the replay (the server would remove it
    /// after its inactive threshold anyway).
    async fn remove(&self, consumer: &PullConsumer) {
        let name = consumer.cached_info().name.as_str();
        if let Err(e) = self.stream.delete_consumer(name).await {
            tracing::warn!(error = %e, consumer = name, "replay consumer not deleted; the server removes it once idle for 60 s");
        }
    }

    /// An ephemeral consumer delivering from the message after `seq`.
    async fn consumer(&self, seq: u64) -> Result<PullConsumer, RunError> {
        self.stream
            .create_consumer(pull::Config {
                description: Some("pagesync projector rebuild".into()),
                ack_policy: AckPolicy::None,
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: seq + 1,
                },
                filter_subject: self.filter_subject.clone(),
                inactive_threshold: Duration::from_secs(60),
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(RunError::nats("creating the replay's consumer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream;
    use pagesync_testkit::private_nats::PrivateNats;

    /// NATS restarting in the middle of a replay (the replay's in-memory consumer
    /// is lost with it) costs a pause, not the rebuild: every message still
    /// arrives once, in order.
    #[tokio::test]
    async fn the_replay_reads_on_after_nats_restarts() {
        // Arrange: 1,000 messages; the reader hands over 100 at a time and waits
        // while the test holds them, so it is mid-replay when NATS goes away.
        let mut nats = PrivateNats::start().await;
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = jetstream::new(client.clone());
        let stream = js
            .create_stream(jetstream::stream::Config {
                name: "REPLAY".into(),
                subjects: vec!["t.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        for i in 0..1000 {
            js.publish(format!("t.{}", i % 7), i.to_string().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let reader = Reader {
            stream,
            filter_subject: "t.>".into(),
            last: 1000,
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let task = tokio::spawn(reader.run(100, tx));
        let mut received: Vec<u64> = Vec::new();
        // The first batch is in: the reader is mid-replay, waiting on the channel.
        let (batch, _) = rx.recv().await.unwrap().unwrap();
        received.extend(batch.iter().map(|m| m.seq));

        // Act: NATS goes away; the reader, let go on, meets the outage.
        nats.stop();
        pagesync_testkit::wait::until(Duration::from_secs(10), "the client sees NATS gone", || {
            let state = client.connection_state();
            async move { state == async_nats::connection::State::Disconnected }
        })
        .await;
        while let Ok(batch) = rx.try_recv() {
            received.extend(batch.unwrap().0.iter().map(|m| m.seq));
        }
        nats.restart().await;
        while let Some(batch) = rx.recv().await {
            let (batch, _) = batch.expect("the replay goes on");
            received.extend(batch.iter().map(|m| m.seq));
        }
        task.await.unwrap();

        // Assert
        assert_eq!(received, (1..=1000).collect::<Vec<u64>>());
    }
}
