//! `projector rebuild`: empty the projection and replay the stream from sequence 1.
//!
//! Run it with the projector stopped. The durable consumer is deleted first (so
//! nothing else acknowledges meanwhile) and recreated after the replay to start
//! right after the last replayed sequence.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::Stream;
use futures::StreamExt;

use crate::batch::{Applier, Incoming};
use crate::consumer::{ConsumerSettings, RunError, incoming};
use crate::files::Files;

/// The tables `rebuild` empties: everything derived from the stream, never `pages`.
const PROJECTION_TABLES: &str = "applied_other_events, dead_letters, page_snapshots, page_fields, \
    conversation_events, receipts, status_changes, reactions, message_edits, \
    message_first_seen, conversations, page_file_locations";

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    pub events: u64,
    pub last_sequence: u64,
    pub took: Duration,
}

pub async fn rebuild(
    stream: &mut Stream,
    applier: &Applier,
    files: &Files,
    settings: &ConsumerSettings,
) -> Result<RebuildReport, RunError> {
    let started = Instant::now();
    let info = stream
        .info()
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let total = info.state.messages;
    match stream.delete_consumer(&settings.name).await {
        Ok(_) => {
            tracing::info!(consumer = %settings.name, "durable consumer deleted for the rebuild")
        }
        Err(e) => tracing::debug!(error = %e, "no durable consumer to delete"),
    }
    {
        let conn = applier
            .pool()
            .get()
            .await
            .map_err(|e| RunError::Db(e.to_string()))?;
        conn.batch_execute(&format!("TRUNCATE {PROJECTION_TABLES}"))
            .await
            .map_err(|e| RunError::Db(e.to_string()))?;
    }
    files.remove_everything().await?;
    tracing::info!(
        events = total,
        first,
        last,
        "rebuild: projection emptied; replaying"
    );
    let mut done = 0u64;
    if total > 0 {
        done = replay(stream, applier, settings, last, total).await?;
    }
    let mut conn = applier
        .pool()
        .get()
        .await
        .map_err(|e| RunError::Db(e.to_string()))?;
    files.write_everything(&mut conn).await?;
    let start = DeliverPolicy::ByStartSequence {
        start_sequence: last + 1,
    };
    stream
        .create_consumer(settings.config(start))
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?;
    let report = RebuildReport {
        events: done,
        last_sequence: last,
        took: started.elapsed(),
    };
    tracing::info!(
        events = done,
        seconds = report.took.as_secs_f64(),
        "rebuild: done"
    );
    Ok(report)
}

/// Fewest events per replay transaction: the per-transaction cost (lock, a dozen
/// statements, the summary fold) is paid once per this many events.
const REPLAY_BATCH: usize = 20_000;

/// Most messages asked for by one fetch of the replay.
const REPLAY_FETCH: usize = 5_000;

/// How long the replay waits for messages before calling the stream stalled.
const REPLAY_STALL: Duration = Duration::from_secs(30);

/// Pause before reading again after a NATS error.
const REPLAY_RETRY: Duration = Duration::from_millis(250);

async fn replay(
    stream: &Stream,
    applier: &Applier,
    settings: &ConsumerSettings,
    last: u64,
    total: u64,
) -> Result<u64, RunError> {
    // Batches are collected by their own task, so the next one fills while this one is applied.
    let size = settings.batch_size.max(REPLAY_BATCH);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let reader = Reader {
        stream: stream.clone(),
        filter_subject: settings.filter_subject.clone(),
        last,
    };
    let collector = tokio::spawn(reader.run(size, tx));
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut done = 0u64;
    while let Some(batch) = rx.recv().await {
        let (batch, seq) = batch?;
        // A batch that fails is retried until it applies: a rebuild never skips events.
        let mut attempt = 0u32;
        loop {
            match applier.apply(&batch).await {
                Ok(_) => break,
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "rebuild batch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt.min(20))))
                        .await;
                }
            }
        }
        done += batch.len() as u64;
        if last_report.elapsed() >= Duration::from_secs(1) || seq >= last {
            last_report = Instant::now();
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let pct = 100.0 * done as f64 / total.max(1) as f64;
            tracing::info!(
                done,
                total,
                percent = format!("{pct:.1}"),
                events_per_second = format!("{rate:.0}"),
                "rebuild progress"
            );
        }
    }
    collector
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?;
    Ok(done)
}

type Collected = Result<(Vec<Incoming>, u64), RunError>;

/// Reads the stream up to sequence `last` with explicit fetches from an ephemeral
/// consumer without acknowledgements, checking that no delivery is missing (a gap
/// in the consumer sequence restarts it after the last message received).
struct Reader {
    stream: Stream,
    filter_subject: String,
    last: u64,
}

impl Reader {
    /// Sends batches of `size` messages (the last one shorter) with the highest
    /// sequence read so far; ends after `last`, or with an error.
    async fn run(self, size: usize, tx: tokio::sync::mpsc::Sender<Collected>) {
        if let Err(e) = self.read(size, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn read(
        &self,
        size: usize,
        tx: &tokio::sync::mpsc::Sender<Collected>,
    ) -> Result<(), RunError> {
        let mut seq = 0u64;
        let mut consumer = self.consumer(seq).await?;
        let mut delivered = 0u64;
        let mut batch = Vec::with_capacity(size);
        let mut progress_at = Instant::now();
        while seq < self.last {
            let remaining = usize::try_from(self.last - seq).unwrap_or(usize::MAX);
            let want = REPLAY_FETCH.min(size - batch.len()).min(remaining);
            // A NATS error (the server restarting, say) restarts the read after the
            // last message received, like a gap; only a stall ends the rebuild.
            let (fetched, mut restart) = match consumer
                .fetch()
                .max_messages(want)
                .expires(Duration::from_secs(1))
                .messages()
                .await
            {
                Ok(f) => (f.collect::<Vec<_>>().await, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            if fetched.is_empty() && restart.is_none() {
                match consumer.info().await {
                    // Nothing left for the filter (the last messages may be on other subjects).
                    Ok(info) if info.num_pending == 0 => seq = self.last,
                    Ok(_) => {}
                    // The consumer is gone (a restarted server forgets in-memory ones).
                    Err(e) => restart = Some(e.to_string()),
                }
            }
            for m in fetched {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        restart = Some(e.to_string());
                        break;
                    }
                };
                let Ok(info) = m.info() else {
                    restart = Some("a delivery without its metadata".into());
                    break;
                };
                if info.consumer_sequence != delivered + 1 {
                    restart = Some("a delivery is missing".into());
                    break;
                }
                delivered += 1;
                seq = info.stream_sequence;
                progress_at = Instant::now();
                if seq <= self.last {
                    batch.push(incoming(&m));
                }
            }
            if progress_at.elapsed() >= REPLAY_STALL {
                return Err(RunError::Consumer(format!(
                    "replay stalled for {} s at sequence {seq}{}",
                    REPLAY_STALL.as_secs(),
                    restart.map(|r| format!(": {r}")).unwrap_or_default()
                )));
            }
            if let Some(reason) = restart {
                tracing::warn!(after = seq, %reason, "replay reading again after the last message received");
                let _ = self
                    .stream
                    .delete_consumer(consumer.cached_info().name.as_str())
                    .await;
                tokio::time::sleep(REPLAY_RETRY).await;
                match self.consumer(seq).await {
                    Ok(c) => consumer = c,
                    // Retried on the next turn, until the stall limit.
                    Err(e) => tracing::warn!(error = %e, "replay consumer not created; retrying"),
                }
                delivered = 0;
            }
            if batch.len() >= size || (seq >= self.last && !batch.is_empty()) {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(size));
                if tx.send(Ok((full, seq))).await.is_err() {
                    break;
                }
            }
        }
        let _ = self
            .stream
            .delete_consumer(consumer.cached_info().name.as_str())
            .await;
        Ok(())
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
            .map_err(|e| RunError::Consumer(e.to_string()))
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
        let js = jetstream::new(client);
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
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Act
        nats.stop();
        let mut received: Vec<u64> = Vec::new();
        for _ in 0..2 {
            let (batch, _) = rx.recv().await.unwrap().unwrap();
            received.extend(batch.iter().map(|m| m.seq));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
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
