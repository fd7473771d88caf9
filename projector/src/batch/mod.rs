//! Applying a batch of stream messages to Postgres in one transaction.
//!
//! Order of work: parse and decode every message (bad ones become dead letters),
//! keep one copy per event id (the best-ranked, then the first in the stream), skip
//! ids already applied by an equal or better copy, upsert the rest with statements
//! that converge in any order, recompute the touched conversations' summaries,
//! record applied ids and dead letters, commit.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use deadpool_postgres::Pool;
use pagesync_schema::{Event, EventType, PageId, Psid};
use tokio_postgres::Transaction;

use crate::decode::{self, Detail, Effect, MessageRow};

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
}

/// Why a batch was not committed. Every variant is retried: nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
}

impl ApplyError {
    /// A failure caused by the data of some event (rather than the database being
    /// away): the batch is retried event by event to find the culprit.
    fn is_data(&self) -> bool {
        match self {
            Self::Db(e) => is_data_error(e),
            Self::Pool(_) => false,
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

struct Prepared {
    candidates: Vec<Candidate>,
    dead: Vec<DeadLetter>,
    duplicates: u64,
    pages: BTreeSet<PageId>,
    conversations: BTreeSet<(PageId, Psid)>,
}

/// Parses and decodes a batch, keeping the winning copy of each event id.
fn prepare(batch: &[Incoming]) -> Prepared {
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
                if key(&cand) < key(existing) {
                    *existing = cand;
                }
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
    /// A rebuild replays history: its per-message conversation logs go to DEBUG so a
    /// replay of millions of events does not flood the INFO log.
    replaying: bool,
}

impl Applier {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            replaying: false,
        }
    }

    /// The same applier for a rebuild.
    pub fn replaying(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            replaying: true,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Applies `batch` in one transaction and commits it.
    pub async fn apply(&self, batch: &[Incoming]) -> Result<Outcome, ApplyError> {
        let prepared = prepare(batch);
        let mut conn = self.pool.get().await?;
        let client: &mut tokio_postgres::Client = &mut conn;
        match apply_prepared(client, &prepared, false, self.replaying).await {
            Err(e) if e.is_data() => {
                tracing::warn!(error = %e, "batch failed on its data; applying it event by event");
                apply_prepared(client, &prepared, true, self.replaying).await
            }
            other => other,
        }
    }
}

async fn apply_prepared(
    client: &mut tokio_postgres::Client,
    prepared: &Prepared,
    one_by_one: bool,
    replaying: bool,
) -> Result<Outcome, ApplyError> {
    let mut tx = client.transaction().await?;
    let ids: Vec<&str> = prepared
        .candidates
        .iter()
        .map(|c| c.event.id.as_str())
        .collect();
    let existing: BTreeMap<String, i16> = tx
        .query(
            "SELECT event_id, source_rank FROM applied_events WHERE event_id = ANY($1::text[])",
            &[&ids],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut outcome = Outcome {
        duplicates: prepared.duplicates,
        pages: prepared.pages.clone(),
        conversations: prepared.conversations.clone(),
        ..Outcome::default()
    };
    let mut to_apply: Vec<&Candidate> = Vec::new();
    for cand in &prepared.candidates {
        match existing.get(cand.event.id.as_str()) {
            Some(&rank) if rank <= cand.event.source.rank() => outcome.duplicates += 1,
            _ => to_apply.push(cand),
        }
    }
    // One applier at a time: the summaries below are read-modify-write.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPLY_LOCK])
        .await?;
    let mut changes = Changes::default();
    let mut late_dead = Vec::new();
    if one_by_one {
        for cand in &to_apply {
            let sp = tx.savepoint("event").await?;
            match Rows::build(&[cand]).execute(&sp).await {
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
    let summary_started = std::time::Instant::now();
    let counts = summarize(&tx, &changes).await?;
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

/// Key of the lock that serializes batch transactions (any value unique to the projector).
const APPLY_LOCK: i64 = 0x7061_6765_7379_6e63;

/// What a batch changed that the conversation summaries depend on.
#[derive(Default)]
struct Changes {
    /// Messages stored for the first time (their mid was unknown).
    messages: Vec<NewMessage>,
    /// Status changes stored for the first time.
    statuses: Vec<NewStatus>,
    /// Conversations where a stored row was replaced by a better copy: recomputed in full.
    recompute: BTreeSet<(String, String)>,
}

struct NewMessage {
    page: String,
    psid: String,
    mid: String,
    incoming: bool,
    ts: i64,
    text: Option<String>,
}

struct NewStatus {
    page: String,
    psid: String,
    status: &'static str,
    at_ms: i64,
    event_id: String,
}

impl Changes {
    fn append(&mut self, mut other: Changes) {
        self.messages.append(&mut other.messages);
        self.statuses.append(&mut other.statuses);
        self.recompute.append(&mut other.recompute);
    }
}

/// Brings the summaries of the conversations a batch changed up to date: additions
/// are folded in (counts add up, bounds and "newest" are maxima, which commute),
/// conversations where a row was replaced are recomputed from their tables.
/// Returns each updated conversation's message count.
async fn summarize(
    tx: &Transaction<'_>,
    changes: &Changes,
) -> Result<BTreeMap<(String, String), i32>, tokio_postgres::Error> {
    let mut counts = BTreeMap::new();
    if !changes.messages.is_empty() || !changes.statuses.is_empty() {
        let m = &changes.messages;
        let mp: Vec<&str> = m.iter().map(|m| m.page.as_str()).collect();
        let ms: Vec<&str> = m.iter().map(|m| m.psid.as_str()).collect();
        let mm: Vec<&str> = m.iter().map(|m| m.mid.as_str()).collect();
        let mi: Vec<bool> = m.iter().map(|m| m.incoming).collect();
        let mt: Vec<i64> = m.iter().map(|m| m.ts).collect();
        let mx: Vec<Option<&str>> = m.iter().map(|m| m.text.as_deref()).collect();
        let st = &changes.statuses;
        let sp: Vec<&str> = st.iter().map(|s| s.page.as_str()).collect();
        let ss: Vec<&str> = st.iter().map(|s| s.psid.as_str()).collect();
        let sv: Vec<&str> = st.iter().map(|s| s.status).collect();
        let sa: Vec<i64> = st.iter().map(|s| s.at_ms).collect();
        let si: Vec<&str> = st.iter().map(|s| s.event_id.as_str()).collect();
        let rows = tx
            .query(
                FOLD_SUMMARIES,
                &[&mp, &ms, &mm, &mi, &mt, &mx, &sp, &ss, &sv, &sa, &si],
            )
            .await?;
        counts.extend(rows.into_iter().map(|r| ((r.get(0), r.get(1)), r.get(2))));
    }
    if !changes.recompute.is_empty() {
        let (pages, psids): (Vec<&str>, Vec<&str>) = changes
            .recompute
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .unzip();
        let rows = tx.query(REFRESH_CONVERSATIONS, &[&pages, &psids]).await?;
        counts.extend(rows.into_iter().map(|r| ((r.get(0), r.get(1)), r.get(2))));
    }
    Ok(counts)
}

/// Folds new messages and status changes into the summaries. Unread messages are
/// recounted (an index range scan) only where a newer reply arrived.
const FOLD_SUMMARIES: &str = "
WITH m AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::int8[], $6::text[])
        AS m(page_id, psid, mid, incoming, ts, text)
), agg AS (
    SELECT page_id, psid, count(*)::int AS n, min(ts) AS first_ms, max(ts) AS last_ms,
           max(ts) FILTER (WHERE NOT incoming) AS out_ms
    FROM m GROUP BY page_id, psid
), latest AS (
    SELECT DISTINCT ON (page_id, psid) page_id, psid, ts, mid, text
    FROM m ORDER BY page_id, psid, ts DESC, mid DESC
), status AS (
    SELECT DISTINCT ON (x.page_id, x.psid) x.page_id, x.psid, x.status, x.at_ms, x.tie
    FROM (
        SELECT * FROM unnest($7::text[], $8::text[], $9::text[], $10::int8[], $11::text[])
            AS s(page_id, psid, status, at_ms, tie)
        UNION ALL
        SELECT page_id, psid, 'open', ts, mid FROM m WHERE incoming
    ) x
    ORDER BY x.page_id, x.psid, x.at_ms DESC, x.tie DESC
), t AS (
    SELECT page_id, psid FROM agg UNION SELECT page_id, psid FROM status
), unread AS (
    SELECT m.page_id, m.psid, count(*)::int AS n
    FROM m JOIN conversations c USING (page_id, psid)
    WHERE m.incoming AND m.ts > coalesce(c.last_out_ms, -1)
    GROUP BY m.page_id, m.psid
)
UPDATE conversations c SET
    message_count = c.message_count + coalesce(agg.n, 0),
    first_message_at = LEAST(c.first_message_at, to_timestamp(agg.first_ms / 1000.0)),
    last_message_at = GREATEST(c.last_message_at, to_timestamp(agg.last_ms / 1000.0)),
    last_message_ms = GREATEST(c.last_message_ms, agg.last_ms),
    last_message_text = CASE WHEN c.last_message_ms IS NULL
            OR (latest.ts, latest.mid) > (c.last_message_ms, c.last_message_mid)
        THEN latest.text ELSE c.last_message_text END,
    last_message_mid = CASE WHEN c.last_message_ms IS NULL
            OR (latest.ts, latest.mid) > (c.last_message_ms, c.last_message_mid)
        THEN latest.mid ELSE c.last_message_mid END,
    last_out_ms = GREATEST(c.last_out_ms, agg.out_ms),
    unread_count = CASE WHEN agg.out_ms > coalesce(c.last_out_ms, -1)
        THEN (SELECT count(*)::int FROM messages x
              WHERE x.page_id = c.page_id AND x.psid = c.psid
                AND x.timestamp_ms > agg.out_ms AND x.direction = 'in')
        ELSE c.unread_count + coalesce(unread.n, 0) END,
    status = CASE WHEN c.status_at_ms IS NULL
            OR (status.at_ms, status.tie) > (c.status_at_ms, c.status_tie)
        THEN coalesce(status.status, c.status) ELSE c.status END,
    status_at_ms = CASE WHEN c.status_at_ms IS NULL
            OR (status.at_ms, status.tie) > (c.status_at_ms, c.status_tie)
        THEN coalesce(status.at_ms, c.status_at_ms) ELSE c.status_at_ms END,
    status_tie = CASE WHEN c.status_at_ms IS NULL
            OR (status.at_ms, status.tie) > (c.status_at_ms, c.status_tie)
        THEN coalesce(status.tie, c.status_tie) ELSE c.status_tie END
FROM t
    LEFT JOIN agg USING (page_id, psid)
    LEFT JOIN latest USING (page_id, psid)
    LEFT JOIN status USING (page_id, psid)
    LEFT JOIN unread USING (page_id, psid)
WHERE c.page_id = t.page_id AND c.psid = t.psid
RETURNING c.page_id, c.psid, c.message_count";

/// Recomputes every summary column from messages and status changes, so the
/// result depends only on which events were applied, never on their order.
const REFRESH_CONVERSATIONS: &str = "
WITH t AS (
    SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS t(page_id, psid)
), agg AS (
    SELECT m.page_id, m.psid, count(*)::int AS n,
           min(m.timestamp_ms) AS first_ms, max(m.timestamp_ms) AS last_ms,
           max(m.timestamp_ms) FILTER (WHERE m.direction = 'out') AS last_out_ms
    FROM messages m JOIN t USING (page_id, psid)
    GROUP BY m.page_id, m.psid
), latest AS (
    SELECT DISTINCT ON (m.page_id, m.psid) m.page_id, m.psid, m.text, m.mid
    FROM messages m JOIN t USING (page_id, psid)
    ORDER BY m.page_id, m.psid, m.timestamp_ms DESC, m.mid DESC
), unread AS (
    SELECT m.page_id, m.psid, count(*)::int AS n
    FROM messages m JOIN agg a USING (page_id, psid)
    WHERE m.direction = 'in' AND m.timestamp_ms > coalesce(a.last_out_ms, -1)
    GROUP BY m.page_id, m.psid
), status AS (
    SELECT DISTINCT ON (x.page_id, x.psid) x.page_id, x.psid, x.status, x.at_ms, x.tie
    FROM (
        SELECT s.page_id, s.psid, s.status, s.at_ms, s.event_id AS tie
        FROM status_changes s JOIN t USING (page_id, psid)
        UNION ALL
        SELECT m.page_id, m.psid, 'open', m.timestamp_ms, m.mid
        FROM messages m JOIN t USING (page_id, psid)
        WHERE m.direction = 'in'
    ) x
    ORDER BY x.page_id, x.psid, x.at_ms DESC, x.tie DESC
)
UPDATE conversations c SET
    message_count = coalesce(agg.n, 0),
    first_message_at = to_timestamp(agg.first_ms / 1000.0),
    last_message_at = to_timestamp(agg.last_ms / 1000.0),
    last_message_text = latest.text,
    last_message_mid = latest.mid,
    unread_count = coalesce(unread.n, 0),
    status = coalesce(status.status, 'open'),
    status_at_ms = status.at_ms,
    status_tie = status.tie,
    last_message_ms = agg.last_ms,
    last_out_ms = agg.last_out_ms
FROM t
    LEFT JOIN agg USING (page_id, psid)
    LEFT JOIN latest USING (page_id, psid)
    LEFT JOIN unread USING (page_id, psid)
    LEFT JOIN status USING (page_id, psid)
WHERE c.page_id = t.page_id AND c.psid = t.psid
RETURNING c.page_id, c.psid, c.message_count";

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

/// Column vectors for every table a set of events writes, duplicates collapsed so
/// no statement touches a row twice.
#[derive(Default)]
struct Rows {
    pages: BTreeSet<String>,
    conversations: BTreeSet<(String, String)>,
    applied: Applied,
    conv_events: ConvEvents,
    messages: BTreeMap<String, (i16, u64, MessageCols)>,
    receipts: BTreeMap<(String, String), (Option<i64>, Option<i64>)>,
    statuses: Statuses,
    reactions: Reactions,
    edits: Edits,
    snapshots: BTreeMap<String, (i64, String, i16, serde_json::Value)>,
    fields: BTreeMap<(String, String), (i64, String, i16, serde_json::Value)>,
    /// Per page, the newest `receivedat` of the ingest events applied.
    webhooks: BTreeMap<String, chrono::DateTime<chrono::Utc>>,
}

#[derive(Default)]
struct Applied {
    ids: Vec<String>,
    types: Vec<&'static str>,
    sources: Vec<&'static str>,
    ranks: Vec<i16>,
    pages: Vec<Option<String>>,
    psids: Vec<Option<String>>,
    seqs: Vec<i64>,
}

#[derive(Default)]
struct ConvEvents {
    ids: Vec<String>,
    pages: Vec<String>,
    psids: Vec<String>,
    types: Vec<&'static str>,
    sources: Vec<&'static str>,
    ranks: Vec<i16>,
    ts: Vec<i64>,
    in_file: Vec<bool>,
    data: Vec<String>,
}

struct MessageCols {
    event_id: String,
    page: String,
    psid: String,
    row: MessageRow,
    ts: i64,
    source: &'static str,
}

#[derive(Default)]
struct Statuses {
    ids: Vec<String>,
    pages: Vec<String>,
    psids: Vec<String>,
    status: Vec<&'static str>,
    at: Vec<i64>,
    ranks: Vec<i16>,
}

#[derive(Default)]
struct Reactions {
    ids: Vec<String>,
    pages: Vec<String>,
    psids: Vec<String>,
    mids: Vec<Option<String>>,
    actions: Vec<Option<String>>,
    reactions: Vec<Option<String>>,
    emojis: Vec<Option<String>>,
    ts: Vec<i64>,
    ranks: Vec<i16>,
}

#[derive(Default)]
struct Edits {
    ids: Vec<String>,
    pages: Vec<String>,
    psids: Vec<String>,
    mids: Vec<Option<String>>,
    texts: Vec<Option<String>>,
    nums: Vec<Option<i32>>,
    ts: Vec<i64>,
    ranks: Vec<i16>,
}

impl Rows {
    fn build(cands: &[&Candidate]) -> Self {
        let mut rows = Rows::default();
        for c in cands {
            rows.add(c);
        }
        rows
    }

    fn add(&mut self, c: &Candidate) {
        let e = &c.event;
        let id = e.id.to_string();
        let rank = e.source.rank();
        let a = &mut self.applied;
        a.ids.push(id.clone());
        a.types.push(e.event_type.as_str());
        a.sources.push(e.source.as_str());
        a.ranks.push(rank);
        a.pages.push(e.page_id.as_ref().map(ToString::to_string));
        a.psids.push(e.psid.as_ref().map(ToString::to_string));
        a.seqs.push(c.seq as i64);
        if e.source == pagesync_schema::Source::Ingest
            && let Some(page) = &e.page_id
        {
            let at = self
                .webhooks
                .entry(page.to_string())
                .or_insert(e.received_at);
            *at = (*at).max(e.received_at);
        }
        // Newer wins; equal (same id) lets the better-ranked copy win.
        let newer = |old: &(i64, String, i16, serde_json::Value), at: i64| {
            (at, id.as_str()) > (old.0, old.1.as_str()) || (id == old.1 && rank < old.2)
        };
        match &c.effect {
            Effect::Nothing => {}
            Effect::PageSnapshot { page, data } => {
                self.pages.insert(page.to_string());
                let at = e.time.timestamp_millis();
                let slot = self.snapshots.get(page.as_str());
                if slot.is_none_or(|old| newer(old, at)) {
                    self.snapshots
                        .insert(page.to_string(), (at, id.clone(), rank, data.clone()));
                }
            }
            Effect::PageChange { page, field, value } => {
                self.pages.insert(page.to_string());
                let at = e.time.timestamp_millis();
                let key = (page.to_string(), field.clone());
                if self.fields.get(&key).is_none_or(|old| newer(old, at)) {
                    self.fields
                        .insert(key, (at, id.clone(), rank, value.clone()));
                }
            }
            Effect::Conversation {
                page,
                psid,
                timestamp_ms,
                in_file,
                detail,
            } => {
                let (page, psid) = (page.to_string(), psid.to_string());
                self.pages.insert(page.clone());
                self.conversations.insert((page.clone(), psid.clone()));
                let ce = &mut self.conv_events;
                ce.ids.push(id.clone());
                ce.pages.push(page.clone());
                ce.psids.push(psid.clone());
                ce.types.push(e.event_type.as_str());
                ce.sources.push(e.source.as_str());
                ce.ranks.push(rank);
                ce.ts.push(*timestamp_ms);
                ce.in_file.push(*in_file);
                ce.data.push(e.data.get().to_owned());
                self.add_detail(c, id, page, psid, *timestamp_ms, detail);
            }
        }
    }

    fn add_detail(
        &mut self,
        c: &Candidate,
        id: String,
        page: String,
        psid: String,
        ts: i64,
        detail: &Detail,
    ) {
        let rank = c.event.source.rank();
        match detail {
            Detail::Message(m) => {
                let key = (rank, c.seq);
                let replace = self
                    .messages
                    .get(&m.mid)
                    .is_none_or(|(r, s, _)| key < (*r, *s));
                if replace {
                    let cols = MessageCols {
                        event_id: id,
                        page,
                        psid,
                        row: m.clone(),
                        ts,
                        source: decode::origin(c.event.source),
                    };
                    self.messages.insert(m.mid.clone(), (rank, c.seq, cols));
                }
            }
            Detail::Delivery { watermark } | Detail::Read { watermark } => {
                let slot = self.receipts.entry((page, psid)).or_default();
                let target = if matches!(detail, Detail::Delivery { .. }) {
                    &mut slot.0
                } else {
                    &mut slot.1
                };
                *target = (*target).max(Some(*watermark));
            }
            Detail::Status { open, at_ms } => {
                let s = &mut self.statuses;
                s.ids.push(id);
                s.pages.push(page);
                s.psids.push(psid);
                s.status.push(if *open { "open" } else { "closed" });
                s.at.push(*at_ms);
                s.ranks.push(rank);
            }
            Detail::Reaction {
                mid,
                action,
                reaction,
                emoji,
            } => {
                let r = &mut self.reactions;
                r.ids.push(id);
                r.pages.push(page);
                r.psids.push(psid);
                r.mids.push(mid.clone());
                r.actions.push(action.clone());
                r.reactions.push(reaction.clone());
                r.emojis.push(emoji.clone());
                r.ts.push(ts);
                r.ranks.push(rank);
            }
            Detail::Edit {
                mid,
                text,
                num_edit,
            } => {
                let ed = &mut self.edits;
                ed.ids.push(id);
                ed.pages.push(page);
                ed.psids.push(psid);
                ed.mids.push(mid.clone());
                ed.texts.push(text.clone());
                ed.nums.push(*num_edit);
                ed.ts.push(ts);
                ed.ranks.push(rank);
            }
            Detail::None => {}
        }
    }

    /// Runs the upserts; returns what the conversation summaries must take in.
    async fn execute(&self, tx: &Transaction<'_>) -> Result<Changes, tokio_postgres::Error> {
        if !self.pages.is_empty() {
            let pages: Vec<&str> = self.pages.iter().map(String::as_str).collect();
            tx.execute(
                "INSERT INTO pages (page_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                &[&pages],
            )
            .await?;
        }
        if !self.conversations.is_empty() {
            let (p, s): (Vec<&str>, Vec<&str>) = self
                .conversations
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .unzip();
            tx.execute(
                "INSERT INTO conversations (page_id, psid)
                 SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                &[&p, &s],
            )
            .await?;
        }
        self.execute_conversation_events(tx).await?;
        let mut changes = Changes::default();
        self.execute_messages(tx, &mut changes).await?;
        self.execute_details(tx, &mut changes).await?;
        self.execute_page(tx).await?;
        self.execute_webhooks(tx).await?;
        let a = &self.applied;
        if !a.ids.is_empty() {
            tx.execute(
                "INSERT INTO applied_events (event_id, event_type, source, source_rank, page_id, psid, stream_seq)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::text[], $6::text[], $7::int8[])
                 ON CONFLICT (event_id) DO UPDATE SET
                     source = EXCLUDED.source, source_rank = EXCLUDED.source_rank,
                     stream_seq = EXCLUDED.stream_seq, applied_at = now()
                 WHERE applied_events.source_rank > EXCLUDED.source_rank",
                &[&a.ids, &a.types, &a.sources, &a.ranks, &a.pages, &a.psids, &a.seqs],
            )
            .await?;
        }
        Ok(changes)
    }

    /// `integrations.last_webhook_at`: the newest `receivedat` of an applied ingest event.
    async fn execute_webhooks(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        if self.webhooks.is_empty() {
            return Ok(());
        }
        let pages: Vec<&str> = self.webhooks.keys().map(String::as_str).collect();
        let at: Vec<chrono::DateTime<chrono::Utc>> = self.webhooks.values().copied().collect();
        tx.execute(
            "UPDATE integrations i SET last_webhook_at = w.at
             FROM unnest($1::text[], $2::timestamptz[]) AS w(page_id, at)
             WHERE i.page_id = w.page_id
               AND (i.last_webhook_at IS NULL OR i.last_webhook_at < w.at)",
            &[&pages, &at],
        )
        .await?;
        Ok(())
    }

    async fn execute_conversation_events(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        let c = &self.conv_events;
        if c.ids.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO conversation_events
                 (event_id, page_id, psid, event_type, source, source_rank, timestamp_ms, in_file, data)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::int2[], $7::int8[], $8::bool[], $9::text[])
             ON CONFLICT (event_id) DO UPDATE SET
                 page_id = EXCLUDED.page_id, psid = EXCLUDED.psid, event_type = EXCLUDED.event_type,
                 source = EXCLUDED.source, source_rank = EXCLUDED.source_rank,
                 timestamp_ms = EXCLUDED.timestamp_ms, in_file = EXCLUDED.in_file, data = EXCLUDED.data
             WHERE conversation_events.source_rank > EXCLUDED.source_rank",
            &[
                &c.ids, &c.pages, &c.psids, &c.types, &c.sources, &c.ranks, &c.ts, &c.in_file,
                &c.data,
            ],
        )
        .await?;
        Ok(())
    }

    async fn execute_messages(
        &self,
        tx: &Transaction<'_>,
        changes: &mut Changes,
    ) -> Result<(), tokio_postgres::Error> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let ms: Vec<&MessageCols> = self.messages.values().map(|(_, _, m)| m).collect();
        let mids: Vec<&str> = ms.iter().map(|m| m.row.mid.as_str()).collect();
        let ids: Vec<&str> = ms.iter().map(|m| m.event_id.as_str()).collect();
        let pages: Vec<&str> = ms.iter().map(|m| m.page.as_str()).collect();
        let psids: Vec<&str> = ms.iter().map(|m| m.psid.as_str()).collect();
        let dirs: Vec<&str> = ms
            .iter()
            .map(|m| if m.row.incoming { "in" } else { "out" })
            .collect();
        let texts: Vec<Option<&str>> = ms.iter().map(|m| m.row.text.as_deref()).collect();
        let atts: Vec<Option<&serde_json::Value>> =
            ms.iter().map(|m| m.row.attachments.as_ref()).collect();
        let ts: Vec<i64> = ms.iter().map(|m| m.ts).collect();
        let sent: Vec<chrono::DateTime<chrono::Utc>> = ms
            .iter()
            .map(|m| chrono::DateTime::from_timestamp_millis(m.ts).unwrap_or_default())
            .collect();
        let sources: Vec<&str> = ms.iter().map(|m| m.source).collect();
        let ranks: Vec<i16> = self.messages.values().map(|(r, _, _)| *r).collect();
        let rows = tx
            .query(
                "INSERT INTO messages (mid, event_id, page_id, psid, direction, text, attachments,
                                       timestamp_ms, sent_at, source, source_rank)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                      $6::text[], $7::jsonb[], $8::int8[], $9::timestamptz[],
                                      $10::text[], $11::int2[])
                 ON CONFLICT (mid) DO UPDATE SET
                     event_id = EXCLUDED.event_id, page_id = EXCLUDED.page_id, psid = EXCLUDED.psid,
                     direction = EXCLUDED.direction, text = EXCLUDED.text,
                     attachments = EXCLUDED.attachments, timestamp_ms = EXCLUDED.timestamp_ms,
                     sent_at = EXCLUDED.sent_at, source = EXCLUDED.source,
                     source_rank = EXCLUDED.source_rank
                 WHERE messages.source_rank > EXCLUDED.source_rank
                 RETURNING page_id, psid, mid, (xmax = 0) AS inserted",
                &[
                    &mids, &ids, &pages, &psids, &dirs, &texts, &atts, &ts, &sent, &sources, &ranks,
                ],
            )
            .await?;
        for r in rows {
            let (page, psid, mid): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            if !r.get::<_, bool>(3) {
                changes.recompute.insert((page, psid));
                continue;
            }
            let Some((_, _, m)) = self.messages.get(&mid) else {
                continue;
            };
            changes.messages.push(NewMessage {
                incoming: m.row.incoming,
                ts: m.ts,
                text: m.row.text.clone(),
                page,
                psid,
                mid,
            });
        }
        Ok(())
    }

    async fn execute_details(
        &self,
        tx: &Transaction<'_>,
        changes: &mut Changes,
    ) -> Result<(), tokio_postgres::Error> {
        if !self.receipts.is_empty() {
            let mut p = Vec::new();
            let mut s = Vec::new();
            let mut d = Vec::new();
            let mut r = Vec::new();
            for ((page, psid), (delivery, read)) in &self.receipts {
                p.push(page.as_str());
                s.push(psid.as_str());
                d.push(*delivery);
                r.push(*read);
            }
            tx.execute(
                "INSERT INTO receipts (page_id, psid, delivery_watermark, read_watermark)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
                 ON CONFLICT (page_id, psid) DO UPDATE SET
                     delivery_watermark = GREATEST(receipts.delivery_watermark, EXCLUDED.delivery_watermark),
                     read_watermark = GREATEST(receipts.read_watermark, EXCLUDED.read_watermark)",
                &[&p, &s, &d, &r],
            )
            .await?;
        }
        let st = &self.statuses;
        if !st.ids.is_empty() {
            let rows = tx
                .query(
                "INSERT INTO status_changes (event_id, page_id, psid, status, at_ms, source_rank)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int2[])
                 ON CONFLICT (event_id) DO UPDATE SET
                     status = EXCLUDED.status, at_ms = EXCLUDED.at_ms, source_rank = EXCLUDED.source_rank
                 WHERE status_changes.source_rank > EXCLUDED.source_rank
                 RETURNING event_id, page_id, psid, status, at_ms, (xmax = 0) AS inserted",
                &[&st.ids, &st.pages, &st.psids, &st.status, &st.at, &st.ranks],
            )
            .await?;
            for r in rows {
                let (event_id, page, psid): (String, String, String) =
                    (r.get(0), r.get(1), r.get(2));
                if !r.get::<_, bool>(5) {
                    changes.recompute.insert((page, psid));
                    continue;
                }
                let status = if r.get::<_, &str>(3) == "open" {
                    "open"
                } else {
                    "closed"
                };
                changes.statuses.push(NewStatus {
                    page,
                    psid,
                    status,
                    at_ms: r.get(4),
                    event_id,
                });
            }
        }
        let r = &self.reactions;
        if !r.ids.is_empty() {
            tx.execute(
                "INSERT INTO reactions (event_id, page_id, psid, mid, action, reaction, emoji, timestamp_ms, source_rank)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                      $6::text[], $7::text[], $8::int8[], $9::int2[])
                 ON CONFLICT (event_id) DO UPDATE SET
                     mid = EXCLUDED.mid, action = EXCLUDED.action, reaction = EXCLUDED.reaction,
                     emoji = EXCLUDED.emoji, timestamp_ms = EXCLUDED.timestamp_ms,
                     source_rank = EXCLUDED.source_rank
                 WHERE reactions.source_rank > EXCLUDED.source_rank",
                &[
                    &r.ids, &r.pages, &r.psids, &r.mids, &r.actions, &r.reactions, &r.emojis,
                    &r.ts, &r.ranks,
                ],
            )
            .await?;
        }
        let e = &self.edits;
        if !e.ids.is_empty() {
            tx.execute(
                "INSERT INTO message_edits (event_id, page_id, psid, mid, text, num_edit, timestamp_ms, source_rank)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                      $6::int4[], $7::int8[], $8::int2[])
                 ON CONFLICT (event_id) DO UPDATE SET
                     mid = EXCLUDED.mid, text = EXCLUDED.text, num_edit = EXCLUDED.num_edit,
                     timestamp_ms = EXCLUDED.timestamp_ms, source_rank = EXCLUDED.source_rank
                 WHERE message_edits.source_rank > EXCLUDED.source_rank",
                &[&e.ids, &e.pages, &e.psids, &e.mids, &e.texts, &e.nums, &e.ts, &e.ranks],
            )
            .await?;
        }
        Ok(())
    }

    async fn execute_page(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        if !self.snapshots.is_empty() {
            let pages: Vec<&str> = self.snapshots.keys().map(String::as_str).collect();
            let (at, id, rank, data) = columns(self.snapshots.values());
            tx.execute(
                "INSERT INTO page_snapshots (page_id, at_ms, event_id, source_rank, data)
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int2[], $5::jsonb[])
                 ON CONFLICT (page_id) DO UPDATE SET
                     at_ms = EXCLUDED.at_ms, event_id = EXCLUDED.event_id,
                     source_rank = EXCLUDED.source_rank, data = EXCLUDED.data
                 WHERE (EXCLUDED.at_ms, EXCLUDED.event_id) > (page_snapshots.at_ms, page_snapshots.event_id)
                    OR (EXCLUDED.event_id = page_snapshots.event_id
                        AND EXCLUDED.source_rank < page_snapshots.source_rank)",
                &[&pages, &at, &id, &rank, &data],
            )
            .await?;
        }
        if !self.fields.is_empty() {
            let pages: Vec<&str> = self.fields.keys().map(|(p, _)| p.as_str()).collect();
            let names: Vec<&str> = self.fields.keys().map(|(_, f)| f.as_str()).collect();
            let (at, id, rank, value) = columns(self.fields.values());
            tx.execute(
                "INSERT INTO page_fields (page_id, field, at_ms, event_id, source_rank, value)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int2[], $6::jsonb[])
                 ON CONFLICT (page_id, field) DO UPDATE SET
                     at_ms = EXCLUDED.at_ms, event_id = EXCLUDED.event_id,
                     source_rank = EXCLUDED.source_rank, value = EXCLUDED.value
                 WHERE (EXCLUDED.at_ms, EXCLUDED.event_id) > (page_fields.at_ms, page_fields.event_id)
                    OR (EXCLUDED.event_id = page_fields.event_id
                        AND EXCLUDED.source_rank < page_fields.source_rank)",
                &[&pages, &names, &at, &id, &rank, &value],
            )
            .await?;
        }
        Ok(())
    }
}

type Versioned = (i64, String, i16, serde_json::Value);

fn columns<'a>(
    values: impl Iterator<Item = &'a Versioned>,
) -> (Vec<i64>, Vec<&'a str>, Vec<i16>, Vec<&'a serde_json::Value>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (at, id, rank, v) in values {
        out.0.push(*at);
        out.1.push(id.as_str());
        out.2.push(*rank);
        out.3.push(v);
    }
    out
}
