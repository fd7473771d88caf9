//! `projector retry-dead-letters`: applies the dead letters again once their cause
//! is fixed (a bug in the projector, a constraint, a full disk), without replaying
//! the whole stream. Each is read again from the stream when it still holds the
//! message (the table keeps a text copy, which is the fallback), applied like any
//! batch, and its row removed when it applies; one that fails again stays, with its
//! `attempts` counted up and the new error.

use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::batch::{Applier, Incoming};
use crate::error::RunError;
use crate::files::Files;

/// Dead letters applied per transaction.
const RETRY_BATCH: usize = 1000;

/// What a retry did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetryReport {
    /// Dead letters tried again.
    pub retried: u64,
    /// Of those, applied now (their rows removed).
    pub applied: u64,
    /// Of those, refused again (their rows kept).
    pub still_dead: u64,
}

/// Retries the dead letters of `only`'s stream sequences, or all when it is empty.
pub async fn retry_dead_letters(
    stream: &Stream,
    applier: &Applier,
    files: &Files,
    only: &[i64],
    shutdown: &CancellationToken,
) -> Result<RetryReport, RunError> {
    let mut conn = applier.pool().get().await?;
    let rows = conn
        .query(
            "SELECT stream_seq, subject, payload FROM dead_letters
             WHERE cardinality($1::int8[]) = 0 OR stream_seq = ANY($1) ORDER BY stream_seq",
            &[&only],
        )
        .await?;
    let mut letters = Vec::with_capacity(rows.len());
    for row in rows {
        let (seq, subject, payload): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        letters.push(original(stream, seq as u64, subject, payload).await);
    }
    let mut report = RetryReport::default();
    for chunk in letters.chunks(RETRY_BATCH) {
        if shutdown.is_cancelled() {
            tracing::warn!(
                "stopped before every dead letter was retried; run it again for the rest"
            );
            break;
        }
        let outcome = applier.apply(chunk).await?;
        let applied: Vec<i64> = chunk
            .iter()
            .enumerate()
            .filter(|(i, _)| !outcome.poison.contains(i))
            .map(|(_, letter)| letter.seq as i64)
            .collect();
        // After the commit: a crash in between leaves rows whose events are
        // applied; the next retry skips those as duplicates and removes the rows.
        conn.execute(
            "DELETE FROM dead_letters WHERE stream_seq = ANY($1)",
            &[&applied],
        )
        .await?;
        files
            .write(&mut conn, &outcome.pages, &outcome.conversations)
            .await?;
        report.retried += chunk.len() as u64;
        report.applied += applied.len() as u64;
        report.still_dead += outcome.poison.len() as u64;
    }
    tracing::info!(
        retried = report.retried,
        applied = report.applied,
        still_dead = report.still_dead,
        "dead letters retried"
    );
    Ok(report)
}

/// The dead letter's message as the stream holds it, else as the table kept it.
async fn original(stream: &Stream, seq: u64, subject: String, stored: String) -> Incoming {
    match stream.get_raw_message(seq).await {
        Ok(m) => Incoming {
            seq,
            subject: m.subject.to_string(),
            payload: m.payload,
        },
        Err(e) => {
            tracing::warn!(stream_seq = seq, error = %e, "dead letter no longer in the stream; retrying the stored copy");
            Incoming {
                seq,
                subject,
                payload: Bytes::from(stored),
            }
        }
    }
}
