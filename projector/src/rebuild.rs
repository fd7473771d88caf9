//! `projector rebuild`: empty the projection and replay the stream from sequence 1.
//!
//! Run it with the projector stopped. The durable consumer is deleted first (so
//! nothing else acknowledges meanwhile) and recreated after the replay to start
//! right after the last replayed sequence.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream::Stream;
use futures::StreamExt;

use crate::batch::Applier;
use crate::consumer::{ConsumerSettings, RunError, incoming};
use crate::files::Files;

/// The tables `rebuild` empties: everything derived from the stream, never `pages`.
const PROJECTION_TABLES: &str = "applied_events, dead_letters, page_snapshots, page_fields, \
    conversation_events, messages, receipts, status_changes, reactions, message_edits, \
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

async fn replay(
    stream: &Stream,
    applier: &Applier,
    settings: &ConsumerSettings,
    last: u64,
    total: u64,
) -> Result<u64, RunError> {
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: settings.filter_subject.clone(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| RunError::Consumer(e.to_string()))?
        .ready_chunks(settings.batch_size);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut done = 0u64;
    let mut seq = 0u64;
    while seq < last {
        let chunk = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .map_err(|_| RunError::Consumer("replay stalled for 30 s".into()))?
            .ok_or_else(|| RunError::Consumer("replay ended early".into()))?;
        let mut batch = Vec::with_capacity(chunk.len());
        for m in chunk {
            let m = m.map_err(|e| RunError::Consumer(e.to_string()))?;
            let item = incoming_ordered(&m);
            seq = seq.max(item.seq);
            if item.seq <= last {
                batch.push(item);
            }
        }
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
    Ok(done)
}

fn incoming_ordered(m: &async_nats::jetstream::Message) -> crate::batch::Incoming {
    incoming(m)
}
