//! Applying a batch of stream messages to Postgres in one transaction.
//!
//! Order of work: parse and decode every message (bad ones become dead letters),
//! keep one copy per event id (the best-ranked, then the first in the stream), skip
//! ids already applied by an equal or better copy, upsert the rest with statements
//! that converge in any order, recompute the touched conversations' summaries,
//! record applied ids and dead letters, commit.

mod first_seen;
mod inbox;
mod rows;
mod summary;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use deadpool_postgres::Pool;
use pagesync_schema::{Event, EventType, PageId, Psid};
use tokio_postgres::Transaction;

use crate::decode::{self, Detail, Effect};
pub use inbox::CHANGES_CHANNEL;
use rows::Rows;
use summary::{Changes, summarize};

/// One message as fetched from the stream.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
}

/// What became of a batch once committed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Indices (into the batch) of messages recorded as dead letters: terminate them.
    pub poison: BTreeSet<usize>,
    /// Events applied (new, or a better copy replacing a weaker one), by type.
    pub applied: BTreeMap<EventType, u64>,
    /// Copies skipped because an equal or better copy was already applied.
    pub duplicates: u64,
    /// Dead letters recorded for the first time.
    pub new_dead_letters: u64,
    /// Pages and conversations whose files must be rewritten.
    pub pages: BTreeSet<PageId>,
    pub conversations: BTreeSet<(PageId, Psid)>,
    /// Messages seen for the first time, by (platform, origin): webhook coverage.
    pub first_seen: first_seen::Counts,
}

/// Why a batch was not committed. Every variant is retried: nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {}", pagesync_runtime::connect::db_error_text(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error(
        "the batch deadline ({0:?}) passed before Postgres committed; its connection was discarded"
    )]
    Deadline(std::time::Duration),
}

impl ApplyError {
    /// A failure caused by the data of some event (rather than the database being
    /// away): the batch is retried event by event to find the culprit.
    fn is_data(&self) -> bool {
        match self {
            Self::Db(e) => is_data_error(e),
            Self::Pool(_) | Self::Deadline(_) => false,
        }
    }
}

fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| matches!(&c.code()[..2], "22" | "23" | "54"))
}

struct Candidate {
    idx: usize,
    seq: u64,
    subject: String,
    event: Event,
    effect: Effect,
    /// The stream sequence and source of the batch's earliest copy of this id
    /// (webhook coverage: where it was first seen).
    first: (u64, pagesync_schema::Source),
}

impl Candidate {
    /// The conversation item this event is stored as: the mid of the message it
    /// carries (a `standby` item's message is the same message as a poll's copy),
    /// else its own id. `None` for events outside conversations.
    fn item_id(&self) -> Option<&str> {
        match &self.effect {
            Effect::Conversation {
                detail: Detail::Message(m),
                ..
            } => Some(&m.mid),
            Effect::Conversation { .. } => Some(self.event.id.as_str()),
            _ => None,
        }
    }

    /// Whether the event's conversation item records it as applied; otherwise a
    /// row of `applied_other_events` does.
    fn recorded_as_item(&self) -> bool {
        self.item_id() == Some(self.event.id.as_str())
    }
}

struct DeadLetter {
    idx: usize,
    seq: u64,
    subject: String,
    event_id: Option<String>,
    event_type: Option<String>,
    payload: String,
    error: String,
}

/// A batch parsed and decoded, ready to apply (CPU work that can run while the
/// previous batch is in the database).
pub struct Prepared {
    candidates: Vec<Candidate>,
    dead: Vec<DeadLetter>,
    duplicates: u64,
    pages: BTreeSet<PageId>,
    conversations: BTreeSet<(PageId, Psid)>,
}

/// Parses and decodes a batch, keeping the winning copy of each event id.
pub fn prepare(batch: &[Incoming]) -> Prepared {
    let mut best: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut prepared = Prepared {
        candidates: Vec::new(),
        dead: Vec::new(),
        duplicates: 0,
        pages: BTreeSet::new(),
        conversations: BTreeSet::new(),
    };
    for (idx, msg) in batch.iter().enumerate() {
        let dead = |event: Option<&Event>, error: String| DeadLetter {
            idx,
            seq: msg.seq,
            subject: decode::strip_nul(&msg.subject),
            event_id: event.map(|e| e.id.to_string()),
            event_type: event.map(|e| e.event_type.to_string()),
            payload: decode::strip_nul(&String::from_utf8_lossy(&msg.payload)),
            error: decode::strip_nul(&error),
        };
        let event = match Event::from_json(&msg.payload) {
            Ok(e) => e,
            Err(e) => {
                prepared.dead.push(dead(None, e.to_string()));
                continue;
            }
        };
        let effect = match decode::decode(&event) {
            Ok(effect) => effect,
            Err(e) => {
                prepared.dead.push(dead(Some(&event), e.0));
                continue;
            }
        };
        // Duplicates touch their files too: a crash after commit but before the
        // files were written is repaired by the redelivery.
        match &effect {
            Effect::Conversation { page, psid, .. } => {
                prepared.conversations.insert((page.clone(), psid.clone()));
            }
            Effect::PageSnapshot { page, .. } | Effect::PageChange { page, .. } => {
                prepared.pages.insert(page.clone());
            }
            Effect::Nothing => {}
        }
        let cand = Candidate {
            idx,
            seq: msg.seq,
            subject: decode::strip_nul(&msg.subject),
            first: (msg.seq, event.source),
            event,
            effect,
        };
        match best.get_mut(cand.event.id.as_str()) {
            None => {
                best.insert(cand.event.id.to_string(), cand);
            }
            Some(existing) => {
                prepared.duplicates += 1;
                let key = |c: &Candidate| (c.event.source.rank(), c.seq);
                let first = existing.first.min(cand.first);
                if key(&cand) < key(existing) {
                    *existing = cand;
                }
                existing.first = first;
            }
        }
    }
    prepared.candidates = best.into_values().collect();
    prepared
}

/// Applies batches to Postgres.
#[derive(Clone)]
pub struct Applier {
    pool: Pool,
    /// Longest one batch's transaction may take.
    deadline: std::time::Duration,
    /// A rebuild replays history: its per-message conversation logs go to DEBUG so a
    /// replay of millions of events does not flood the INFO log.
    replaying: bool,
}

impl Applier {
    pub fn new(pool: Pool, deadline: std::time::Duration) -> Self {
        Self {
            pool,
            deadline,
            replaying: false,
        }
    }

    /// The same applier for a rebuild.
    pub fn replaying(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            deadline: self.deadline,
            replaying: true,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn deadline(&self) -> std::time::Duration {
        self.deadline
    }

    /// Applies `batch` in one transaction and commits it.
    pub async fn apply(&self, batch: &[Incoming]) -> Result<Outcome, ApplyError> {
        self.apply_prepared(&prepare(batch)).await
    }

    /// Applies a prepared batch in one transaction and commits it, within the
    /// deadline. A connection that misses it may be stuck on a network that went
    /// silent: it is discarded, never reused.
    pub async fn apply_prepared(&self, prepared: &Prepared) -> Result<Outcome, ApplyError> {
        let mut conn = self.pool.get().await?;
        let work = apply_or_isolate(&mut conn, prepared, self.replaying);
        match tokio::time::timeout(self.deadline, work).await {
            Ok(result) => result,
            Err(_) => {
                crate::metrics::deadline_exceeded("apply");
                pagesync_runtime::connect::discard(conn);
                Err(ApplyError::Deadline(self.deadline))
            }
        }
    }
}

/// Applies the batch; when its data fails, again event by event to set the
/// culprits aside.
async fn apply_or_isolate(
    client: &mut tokio_postgres::Client,
    prepared: &Prepared,
    replaying: bool,
) -> Result<Outcome, ApplyError> {
    match apply_prepared(client, prepared, false, replaying).await {
        Err(e) if e.is_data() => {
            tracing::warn!(error = %e, "batch failed on its data; applying it event by event");
            apply_prepared(client, prepared, true, replaying).await
        }
        other => other,
    }
}

async fn apply_prepared(
    client: &mut tokio_postgres::Client,
    prepared: &Prepared,
    one_by_one: bool,
    replaying: bool,
) -> Result<Outcome, ApplyError> {
    let mut tx = client.transaction().await?;
    // One applier at a time, from before it reads what is stored: the duplicate
    // checks and the summaries are read-modify-write. The lock is sent with the
    // first query (one round trip).
    let (locked, stored) = futures::join!(
        tx.batch_execute(LOCK_APPLY),
        Stored::load(&tx, &prepared.candidates)
    );
    locked?;
    let stored = stored?;
    let mut outcome = Outcome {
        duplicates: prepared.duplicates,
        pages: prepared.pages.clone(),
        conversations: prepared.conversations.clone(),
        ..Outcome::default()
    };
    let mut to_apply: Vec<&Candidate> = Vec::new();
    // Conversations that lose an item to a better copy filed under another conversation.
    let mut moved_from: BTreeSet<(String, String)> = BTreeSet::new();
    for cand in &prepared.candidates {
        let rank = cand.event.source.rank();
        if stored.rank_of(cand).is_some_and(|stored| stored <= rank) {
            outcome.duplicates += 1;
            continue;
        }
        if let (Some(item), Effect::Conversation { page, psid, .. }) =
            (cand.item_id(), &cand.effect)
            && let Some((stored_rank, old_page, old_psid)) = stored.items.get(item)
            && *stored_rank > rank
            && (old_page.as_str(), old_psid.as_str()) != (page.as_str(), psid.as_str())
        {
            moved_from.insert((old_page.clone(), old_psid.clone()));
            if let (Ok(p), Ok(s)) = (
                PageId::parse(old_page.as_str()),
                Psid::parse(old_psid.as_str()),
            ) {
                outcome.conversations.insert((p, s));
            }
        }
        to_apply.push(cand);
    }
    let mut changes = Changes::default();
    let mut late_dead = Vec::new();
    if one_by_one {
        for cand in &to_apply {
            let sp = tx.savepoint("event").await?;
            let applied = match Rows::build(&[cand]).execute(&sp).await {
                Ok(more) => first_seen::record(&sp, &[cand], &mut outcome.first_seen)
                    .await
                    .map(|()| more),
                Err(e) => Err(e),
            };
            match applied {
                Ok(more) => {
                    sp.commit().await?;
                    changes.append(more);
                }
                Err(e) if is_data_error(&e) => {
                    sp.rollback().await?;
                    late_dead.push(cand.idx);
                }
                Err(e) => return Err(e.into()),
            }
        }
    } else {
        changes = Rows::build(&to_apply).execute(&tx).await?;
        first_seen::record(&tx, &to_apply, &mut outcome.first_seen).await?;
    }
    // Events the database refused become dead letters with its complaint.
    let late: Vec<DeadLetter> = to_apply
        .iter()
        .filter(|c| late_dead.contains(&c.idx))
        .map(|cand| DeadLetter {
            idx: cand.idx,
            seq: cand.seq,
            subject: cand.subject.clone(),
            event_id: Some(cand.event.id.to_string()),
            event_type: Some(cand.event.event_type.to_string()),
            payload: decode::strip_nul(&String::from_utf8_lossy(&cand.event.to_json())),
            error: "the database refused the event's data".into(),
        })
        .collect();
    for cand in to_apply.iter().filter(|c| !late_dead.contains(&c.idx)) {
        *outcome.applied.entry(cand.event.event_type).or_default() += 1;
    }
    let changed = changed_conversations(&to_apply, &late_dead, &moved_from);
    changes.recompute.extend(moved_from);
    let summary_started = std::time::Instant::now();
    let counts = summarize(&tx, &changes).await?;
    inbox::recount_unread(&tx, &changes.receipts).await?;
    inbox::record_changes(&tx, &changed).await?;
    tracing::debug!(
        new_messages = changes.messages.len(),
        recomputed = changes.recompute.len(),
        summary_ms = summary_started.elapsed().as_millis() as u64,
        "conversation summaries updated"
    );
    let inserted_messages: Vec<(String, String, String)> = changes
        .messages
        .iter()
        .map(|m| (m.page.clone(), m.psid.clone(), m.mid.clone()))
        .collect();
    log_conversations(&inserted_messages, &counts, replaying);
    let dead: Vec<&DeadLetter> = prepared.dead.iter().chain(&late).collect();
    outcome.new_dead_letters = record_dead_letters(&tx, &dead).await?;
    outcome.poison = dead.iter().map(|d| d.idx).collect();
    tx.commit().await?;
    Ok(outcome)
}

/// The conversations whose API view the batch changed: those of the events it
/// applied, and those that lost an item to another conversation.
fn changed_conversations(
    applied: &[&Candidate],
    refused: &[usize],
    moved_from: &BTreeSet<(String, String)>,
) -> BTreeSet<(String, String)> {
    let mut changed = moved_from.clone();
    for cand in applied.iter().filter(|c| !refused.contains(&c.idx)) {
        if let Effect::Conversation { page, psid, .. } = &cand.effect {
            changed.insert((page.to_string(), psid.to_string()));
        }
    }
    changed
}

/// What the projection already holds for a batch's candidates.
struct Stored {
    /// Conversation items by item id: rank, page and psid of the stored copy.
    items: BTreeMap<String, (i16, String, String)>,
    /// `applied_other_events` by event id: rank of the stored copy.
    others: BTreeMap<String, i16>,
}

impl Stored {
    async fn load(
        tx: &Transaction<'_>,
        cands: &[Candidate],
    ) -> Result<Self, tokio_postgres::Error> {
        let items: Vec<&str> = cands.iter().filter_map(Candidate::item_id).collect();
        let others: Vec<&str> = cands
            .iter()
            .filter(|c| !c.recorded_as_item())
            .map(|c| c.event.id.as_str())
            .collect();
        let rows = tx
            .query(
                "SELECT item_id, source_rank, page_id, psid FROM conversation_events
                 WHERE item_id = ANY($1::text[])
                 UNION ALL
                 SELECT event_id, source_rank, NULL, NULL FROM applied_other_events
                 WHERE event_id = ANY($2::text[])",
                &[&items, &others],
            )
            .await?;
        let mut stored = Stored {
            items: BTreeMap::new(),
            others: BTreeMap::new(),
        };
        for r in rows {
            let (id, rank): (String, i16) = (r.get(0), r.get(1));
            match (r.get::<_, Option<String>>(2), r.get::<_, Option<String>>(3)) {
                (Some(page), Some(psid)) => {
                    stored.items.insert(id, (rank, page, psid));
                }
                _ => {
                    stored.others.insert(id, rank);
                }
            }
        }
        Ok(stored)
    }

    /// The rank of the copy of this event already applied, if any.
    fn rank_of(&self, cand: &Candidate) -> Option<i16> {
        let id = cand.event.id.as_str();
        if cand.recorded_as_item() {
            self.items.get(id).map(|(rank, _, _)| *rank)
        } else {
            self.others.get(id).copied()
        }
    }
}

/// Logs `new conversation` for the first message of a (page, psid), else `continuing conversation`.
fn log_conversations(
    inserted: &[(String, String, String)],
    counts: &BTreeMap<(String, String), i32>,
    replaying: bool,
) {
    let mut seen: BTreeMap<(&str, &str), i32> = BTreeMap::new();
    for (page, psid, _) in inserted {
        *seen.entry((page, psid)).or_default() += 1;
    }
    for ((page_id, psid), new) in seen {
        let total = counts
            .get(&(page_id.to_owned(), psid.to_owned()))
            .copied()
            .unwrap_or(new);
        for i in 0..new {
            let first = total - new == 0 && i == 0;
            match (first, replaying) {
                (true, false) => tracing::info!(page_id, psid, "new conversation"),
                (false, false) => tracing::info!(page_id, psid, "continuing conversation"),
                (true, true) => tracing::debug!(page_id, psid, "new conversation"),
                (false, true) => tracing::debug!(page_id, psid, "continuing conversation"),
            }
        }
    }
}

/// Takes the lock that serializes batch transactions (key "pageappl"; distinct
/// from the migration lock, so a service migrating at start never waits on a batch).
/// A simple query: no statement to prepare.
const LOCK_APPLY: &str = "SELECT pg_advisory_xact_lock(8097867290112979052)";

async fn record_dead_letters(
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_apply_lock_key_is_pageappl() {
        assert_eq!(
            super::LOCK_APPLY,
            format!(
                "SELECT pg_advisory_xact_lock({})",
                i64::from_be_bytes(*b"pageappl")
            )
        );
    }
}
