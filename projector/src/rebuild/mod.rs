//! `projector rebuild`: empty the projection and replay the stream from sequence 1.
//!
//! Run it with the projector stopped. The durable consumer is deleted first (so
//! nothing else acknowledges meanwhile) and recreated after the replay to start
//! right after the last replayed sequence. A rebuild stopped by SIGINT/SIGTERM
//! leaves a partial projection and no durable consumer: run it again.

use std::time::{Duration, Instant};

mod reader;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::Stream;

use tokio_util::sync::CancellationToken;

use crate::backoff;
use crate::batch::Applier;
use crate::consumer::ConsumerSettings;
use crate::error::RunError;
use crate::files::Files;
use reader::Reader;

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
    shutdown: &CancellationToken,
) -> Result<RebuildReport, RunError> {
    let started = Instant::now();
    let info = stream
        .info()
        .await
        .map_err(RunError::nats("reading the stream's state"))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let total = info.state.messages;
    empty_projection(stream, applier, files, settings).await?;
    tracing::info!(
        events = total,
        first,
        last,
        "rebuild: projection emptied; replaying"
    );
    let mut done = 0u64;
    if total > 0 {
        done = replay(stream, applier, settings, (last, total), shutdown).await?;
    }
    let mut conn = applier.pool().get().await?;
    shutdown
        .run_until_cancelled(files.write_everything(&mut conn))
        .await
        .ok_or(RunError::Cancelled)??;
    let start = DeliverPolicy::ByStartSequence {
        start_sequence: last + 1,
    };
    stream
        .create_consumer(settings.config(start))
        .await
        .map_err(RunError::nats(
            "creating the durable consumer after the replay",
        ))?;
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

/// Deletes the durable consumer (so nothing else acknowledges meanwhile), then
/// empties the projection's tables and files.
async fn empty_projection(
    stream: &Stream,
    applier: &Applier,
    files: &Files,
    settings: &ConsumerSettings,
) -> Result<(), RunError> {
    match stream.delete_consumer(&settings.name).await {
        Ok(_) => {
            tracing::info!(consumer = %settings.name, "durable consumer deleted for the rebuild")
        }
        Err(e) => tracing::debug!(error = %e, "no durable consumer to delete"),
    }
    let conn = applier.pool().get().await?;
    conn.batch_execute(&format!("TRUNCATE {PROJECTION_TABLES}"))
        .await?;
    files.remove_everything().await?;
    Ok(())
}

/// Fewest events per replay transaction: the per-transaction cost (lock, a dozen
/// statements, the summary fold) is paid once per this many events.
const REPLAY_BATCH: usize = 20_000;

/// Where a replay is, for its progress lines.
struct Progress {
    started: Instant,
    last_report: Instant,
    done: u64,
    total: u64,
    last: u64,
}

impl Progress {
    /// Logs the progress once a second, and at the end.
    fn applied(&mut self, events: usize, seq: u64) {
        self.done += events as u64;
        if self.last_report.elapsed() < Duration::from_secs(1) && seq < self.last {
            return;
        }
        self.last_report = Instant::now();
        let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = 100.0 * self.done as f64 / self.total.max(1) as f64;
        tracing::info!(
            done = self.done,
            total = self.total,
            percent = format!("{pct:.1}"),
            events_per_second = format!("{rate:.0}"),
            "rebuild progress"
        );
    }
}

async fn replay(
    stream: &Stream,
    applier: &Applier,
    settings: &ConsumerSettings,
    (last, total): (u64, u64),
    shutdown: &CancellationToken,
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
    let _stop_reader = AbortOnDrop(collector.abort_handle());
    let now = Instant::now();
    let mut progress = Progress {
        started: now,
        last_report: now,
        done: 0,
        total,
        last,
    };
    while let Some(batch) = shutdown
        .run_until_cancelled(rx.recv())
        .await
        .ok_or(RunError::Cancelled)?
    {
        let (batch, seq) = batch?;
        // A batch that fails is retried until it applies: a rebuild never skips events.
        backoff::until_ok("a rebuild batch", shutdown, || applier.apply(&batch))
            .await
            .ok_or(RunError::Cancelled)?;
        progress.applied(batch.len(), seq);
    }
    collector.await?;
    Ok(progress.done)
}

/// Ends the reader when the replay ends early (an error, or shutdown).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
