//! Dead letters: messages that cannot be applied, recorded with their complaint
//! (keyed by stream sequence) and terminated.

use std::collections::BTreeMap;

use pagesync_schema::Event;
use tokio_postgres::Transaction;

use super::Incoming;
use super::prepare::Candidate;
use crate::decode;

pub(super) struct DeadLetter {
    /// Index of the message in its batch.
    pub idx: usize,
    pub seq: u64,
    pub subject: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub payload: String,
    pub error: String,
}

impl DeadLetter {
    /// A message that did not parse or decode (`event`, when it parsed).
    pub fn of_message(idx: usize, msg: &Incoming, event: Option<&Event>, error: &str) -> Self {
        Self {
            idx,
            seq: msg.seq,
            subject: decode::strip_nul(&msg.subject),
            event_id: event.map(|e| e.id.to_string()),
            event_type: event.map(|e| e.event_type.to_string()),
            payload: decode::strip_nul(&String::from_utf8_lossy(&msg.payload)),
            error: decode::strip_nul(error),
        }
    }

    /// An event the database refused, with its complaint.
    pub fn refused(cand: &Candidate) -> Self {
        Self {
            idx: cand.idx,
            seq: cand.seq,
            subject: cand.subject.clone(),
            event_id: Some(cand.event.id.to_string()),
            event_type: Some(cand.event.event_type.to_string()),
            payload: decode::strip_nul(&String::from_utf8_lossy(&cand.event.to_json())),
            error: "the database refused the event's data".into(),
        }
    }
}

/// Records the dead letters (a known one counts another attempt); returns how
/// many are new.
pub(super) async fn record(
    tx: &Transaction<'_>,
    dead: &[&DeadLetter],
) -> Result<u64, tokio_postgres::Error> {
    if dead.is_empty() {
        return Ok(0);
    }
    let mut by_seq: BTreeMap<i64, &DeadLetter> = BTreeMap::new();
    for d in dead {
        by_seq.insert(d.seq as i64, d);
    }
    let seqs: Vec<i64> = by_seq.keys().copied().collect();
    let subjects: Vec<&str> = by_seq.values().map(|d| d.subject.as_str()).collect();
    let ids: Vec<Option<&str>> = by_seq.values().map(|d| d.event_id.as_deref()).collect();
    let types: Vec<Option<&str>> = by_seq.values().map(|d| d.event_type.as_deref()).collect();
    let payloads: Vec<&str> = by_seq.values().map(|d| d.payload.as_str()).collect();
    let errors: Vec<&str> = by_seq.values().map(|d| d.error.as_str()).collect();
    for d in dead {
        tracing::warn!(stream_seq = d.seq, event_id = d.event_id.as_deref(), error = %d.error, "dead letter");
    }
    let rows = tx
        .query(
            "INSERT INTO dead_letters (stream_seq, subject, event_id, event_type, payload, error)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
             ON CONFLICT (stream_seq) DO UPDATE SET
                 attempts = dead_letters.attempts + 1,
                 last_failed_at = now(),
                 error = EXCLUDED.error
             RETURNING (xmax = 0) AS inserted",
            &[&seqs, &subjects, &ids, &types, &payloads, &errors],
        )
        .await?;
    Ok(rows.iter().filter(|r| r.get::<_, bool>(0)).count() as u64)
}
