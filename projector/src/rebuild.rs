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
    conversations, page_file_locations";

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
    let conn = applier
        .pool()
        .get()
        .await
        .map_err(|e| RunError::Db(e.to_string()))?;
    files.write_everything(&conn).await?;
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
            let fetched = consumer
                .fetch()
                .max_messages(want)
                .expires(Duration::from_secs(1))
                .messages()
                .await
                .map_err(|e| RunError::Consumer(e.to_string()))?;
            let fetched: Vec<_> = fetched.collect().await;
            // Nothing left for the filter (the last messages may be on other subjects).
            if fetched.is_empty() && consumer.info().await.is_ok_and(|i| i.num_pending == 0) {
                seq = self.last;
            }
            let mut gap = false;
            for m in fetched {
                let m = m.map_err(|e| RunError::Consumer(e.to_string()))?;
                let info = m.info().map_err(|e| RunError::Consumer(e.to_string()))?;
                if info.consumer_sequence != delivered + 1 {
                    gap = true;
                    break;
                }
                delivered += 1;
                seq = info.stream_sequence;
                progress_at = Instant::now();
                if seq <= self.last {
                    batch.push(incoming(&m));
                }
            }
            if gap {
                tracing::warn!(
                    after = seq,
                    "replay missed a delivery; reading again after it"
                );
                let _ = self
                    .stream
                    .delete_consumer(consumer.cached_info().name.as_str())
                    .await;
                consumer = self.consumer(seq).await?;
                delivered = 0;
            } else if progress_at.elapsed() >= REPLAY_STALL {
                return Err(RunError::Consumer(format!(
                    "replay stalled for {} s at sequence {seq}",
                    REPLAY_STALL.as_secs()
                )));
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
