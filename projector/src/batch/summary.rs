//! Conversation summaries: folded from what a batch stored for the first time,
//! recomputed where a stored row was replaced by a better copy.

use std::collections::{BTreeMap, BTreeSet};

use pagesync_schema::{PageId, Psid};
use tokio_postgres::{Row, Transaction};

use crate::parsed;

/// What a batch changed that the conversation summaries depend on.
#[derive(Default)]
pub(super) struct Changes {
    /// Messages stored for the first time (their mid was unknown).
    pub messages: Vec<NewMessage>,
    /// Status changes stored for the first time.
    pub statuses: Vec<NewStatus>,
    /// Conversations where a stored row was replaced by a better copy: recomputed in full.
    pub recompute: BTreeSet<(PageId, Psid)>,
    /// Conversations whose delivery or read watermark moved: unread recounted.
    pub receipts: BTreeSet<(PageId, Psid)>,
}

pub(super) struct NewMessage {
    pub page: PageId,
    pub psid: Psid,
    pub mid: String,
    pub incoming: bool,
    pub ts: i64,
    pub text: Option<String>,
}

pub(super) struct NewStatus {
    pub page: PageId,
    pub psid: Psid,
    pub status: &'static str,
    pub at_ms: i64,
    pub event_id: String,
}

impl Changes {
    pub fn append(&mut self, mut other: Changes) {
        self.messages.append(&mut other.messages);
        self.statuses.append(&mut other.statuses);
        self.recompute.append(&mut other.recompute);
        self.receipts.append(&mut other.receipts);
    }
}

/// Brings the summaries of the conversations a batch changed up to date: additions
/// are folded in (counts add up, bounds and "newest" are maxima, which commute),
/// conversations where a row was replaced are recomputed from their tables.
/// Returns each updated conversation's message count.
pub(super) async fn summarize(
    tx: &Transaction<'_>,
    changes: &Changes,
) -> Result<BTreeMap<(PageId, Psid), i32>, tokio_postgres::Error> {
    let mut counts = BTreeMap::new();
    if !changes.messages.is_empty() || !changes.statuses.is_empty() {
        let folds = Fold::collect(changes);
        let c = Columns::of(&folds);
        let rows = tx
            .query(
                FOLD_SUMMARIES,
                &[
                    &c.pages,
                    &c.psids,
                    &c.counts,
                    &c.first,
                    &c.last,
                    &c.out,
                    &c.latest_ms,
                    &c.latest_mid,
                    &c.latest_text,
                    &c.status,
                    &c.status_at,
                    &c.status_tie,
                    &c.incoming,
                    &c.in_ms,
                ],
            )
            .await?;
        read_counts(&rows, &mut counts)?;
    }
    if !changes.recompute.is_empty() {
        let (pages, psids): (Vec<&str>, Vec<&str>) = changes
            .recompute
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .unzip();
        let rows = tx.query(REFRESH_CONVERSATIONS, &[&pages, &psids]).await?;
        read_counts(&rows, &mut counts)?;
    }
    Ok(counts)
}

/// The `RETURNING page_id, psid, message_count` of the summary statements.
fn read_counts(
    rows: &[Row],
    counts: &mut BTreeMap<(PageId, Psid), i32>,
) -> Result<(), tokio_postgres::Error> {
    for r in rows {
        let key = (parsed::get(r, 0)?, parsed::get(r, 1)?);
        counts.insert(key, r.try_get(2)?);
    }
    Ok(())
}

/// What a batch adds to one conversation's summary, aggregated here so Postgres
/// updates each conversation from one row (ids compare by bytes, as `COLLATE "C"`
/// does in the SQL).
#[derive(Default)]
struct Fold<'a> {
    count: i32,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    /// Newest reply.
    out_ms: Option<i64>,
    /// Newest customer message.
    in_ms: Option<i64>,
    /// Newest message: (time, mid, text).
    latest: Option<(i64, &'a str, Option<&'a str>)>,
    /// Newest status: (time, tie-breaker, status); an incoming message counts as "open".
    status: Option<(i64, &'a str, &'static str)>,
    /// Times of the incoming messages, for the unread count.
    incoming: Vec<i64>,
}

impl<'a> Fold<'a> {
    fn collect(changes: &'a Changes) -> BTreeMap<(&'a str, &'a str), Fold<'a>> {
        let mut folds: BTreeMap<(&str, &str), Fold> = BTreeMap::new();
        for m in &changes.messages {
            let f = folds.entry((m.page.as_str(), m.psid.as_str())).or_default();
            f.count += 1;
            f.first_ms = Some(f.first_ms.map_or(m.ts, |t| t.min(m.ts)));
            f.last_ms = Some(f.last_ms.map_or(m.ts, |t| t.max(m.ts)));
            if f.latest
                .is_none_or(|(ts, mid, _)| (m.ts, m.mid.as_str()) > (ts, mid))
            {
                f.latest = Some((m.ts, &m.mid, m.text.as_deref()));
            }
            if m.incoming {
                f.incoming.push(m.ts);
                f.in_ms = Some(f.in_ms.map_or(m.ts, |t| t.max(m.ts)));
                f.newer_status(m.ts, &m.mid, "open");
            } else {
                f.out_ms = Some(f.out_ms.map_or(m.ts, |t| t.max(m.ts)));
            }
        }
        for st in &changes.statuses {
            let f = folds
                .entry((st.page.as_str(), st.psid.as_str()))
                .or_default();
            f.newer_status(st.at_ms, &st.event_id, st.status);
        }
        folds
    }

    fn newer_status(&mut self, at: i64, tie: &'a str, status: &'static str) {
        if self.status.is_none_or(|(t, k, _)| (at, tie) > (t, k)) {
            self.status = Some((at, tie, status));
        }
    }
}

/// The folds as the statement's column arrays.
struct Columns<'a> {
    pages: Vec<&'a str>,
    psids: Vec<&'a str>,
    counts: Vec<i32>,
    first: Vec<Option<i64>>,
    last: Vec<Option<i64>>,
    out: Vec<Option<i64>>,
    in_ms: Vec<Option<i64>>,
    latest_ms: Vec<Option<i64>>,
    latest_mid: Vec<Option<&'a str>>,
    latest_text: Vec<Option<&'a str>>,
    status: Vec<Option<&'static str>>,
    status_at: Vec<Option<i64>>,
    status_tie: Vec<Option<&'a str>>,
    /// Comma-separated (an array per row cannot travel in an unnest of arrays).
    incoming: Vec<String>,
}

impl<'a> Columns<'a> {
    fn of(folds: &BTreeMap<(&'a str, &'a str), Fold<'a>>) -> Self {
        let mut c = Columns {
            pages: Vec::new(),
            psids: Vec::new(),
            counts: Vec::new(),
            first: Vec::new(),
            last: Vec::new(),
            out: Vec::new(),
            in_ms: Vec::new(),
            latest_ms: Vec::new(),
            latest_mid: Vec::new(),
            latest_text: Vec::new(),
            status: Vec::new(),
            status_at: Vec::new(),
            status_tie: Vec::new(),
            incoming: Vec::new(),
        };
        for (&(page, psid), f) in folds {
            c.pages.push(page);
            c.psids.push(psid);
            c.counts.push(f.count);
            c.first.push(f.first_ms);
            c.last.push(f.last_ms);
            c.out.push(f.out_ms);
            c.in_ms.push(f.in_ms);
            c.latest_ms.push(f.latest.map(|l| l.0));
            c.latest_mid.push(f.latest.map(|l| l.1));
            c.latest_text.push(f.latest.and_then(|l| l.2));
            c.status.push(f.status.map(|s| s.2));
            c.status_at.push(f.status.map(|s| s.0));
            c.status_tie.push(f.status.map(|s| s.1));
            let times: Vec<String> = f.incoming.iter().map(i64::to_string).collect();
            c.incoming.push(times.join(","));
        }
        c
    }
}

/// Folds a batch's additions into the summaries, one row per conversation. Unread
/// messages (the customer's, after the later of the last reply and the read
/// watermark) are recounted (an index range scan) only where a newer reply arrived.
const FOLD_SUMMARIES: &str = "
WITH x AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[], $5::int8[], $6::int8[],
                         $7::int8[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::text[],
                         $13::text[], $14::int8[])
        AS x(page_id, psid, n, first_ms, last_ms, out_ms, latest_ms, latest_mid, latest_text,
             status, status_at, status_tie, incoming, in_ms)
)
UPDATE conversations c SET
    message_count = c.message_count + x.n,
    first_message_at = LEAST(c.first_message_at, to_timestamp(x.first_ms / 1000.0)),
    last_message_at = GREATEST(c.last_message_at, to_timestamp(x.last_ms / 1000.0)),
    last_message_ms = GREATEST(c.last_message_ms, x.last_ms),
    last_message_text = CASE WHEN c.last_message_ms IS NULL
            OR (x.latest_ms, x.latest_mid COLLATE \"C\") > (c.last_message_ms, c.last_message_mid)
        THEN x.latest_text ELSE c.last_message_text END,
    last_message_mid = CASE WHEN c.last_message_ms IS NULL
            OR (x.latest_ms, x.latest_mid COLLATE \"C\") > (c.last_message_ms, c.last_message_mid)
        THEN x.latest_mid ELSE c.last_message_mid END,
    last_out_ms = GREATEST(c.last_out_ms, x.out_ms),
    last_in_ms = GREATEST(c.last_in_ms, x.in_ms),
    unread_count = CASE WHEN x.out_ms > coalesce(c.last_out_ms, -1)
        THEN (SELECT count(*)::int FROM conversation_events m
              WHERE m.page_id = c.page_id AND m.psid = c.psid AND m.in_file
                AND m.timestamp_ms > GREATEST(x.out_ms, coalesce(r.read_watermark, -1))
                AND m.direction = 'in')
        ELSE c.unread_count + (SELECT count(*)::int
              FROM unnest(string_to_array(x.incoming, ',')::int8[]) AS t(ms)
              WHERE t.ms > GREATEST(coalesce(c.last_out_ms, -1), coalesce(r.read_watermark, -1))) END,
    status = CASE WHEN c.status_at_ms IS NULL
            OR (x.status_at, x.status_tie COLLATE \"C\") > (c.status_at_ms, c.status_tie)
        THEN coalesce(x.status, c.status) ELSE c.status END,
    status_at_ms = CASE WHEN c.status_at_ms IS NULL
            OR (x.status_at, x.status_tie COLLATE \"C\") > (c.status_at_ms, c.status_tie)
        THEN coalesce(x.status_at, c.status_at_ms) ELSE c.status_at_ms END,
    status_tie = CASE WHEN c.status_at_ms IS NULL
            OR (x.status_at, x.status_tie COLLATE \"C\") > (c.status_at_ms, c.status_tie)
        THEN coalesce(x.status_tie, c.status_tie) ELSE c.status_tie END
FROM x LEFT JOIN receipts r ON r.page_id = x.page_id AND r.psid = x.psid
WHERE c.page_id = x.page_id AND c.psid = x.psid
RETURNING c.page_id, c.psid, c.message_count";

/// Recomputes every summary column from the stored messages and status changes, so the
/// result depends only on which events were applied, never on their order.
const REFRESH_CONVERSATIONS: &str = "
WITH t AS (
    SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS t(page_id, psid)
), msg AS (
    SELECT m.page_id, m.psid, m.item_id AS mid, m.direction, m.text, m.timestamp_ms
    FROM conversation_events m JOIN t USING (page_id, psid)
    WHERE m.in_file AND m.direction IS NOT NULL
), agg AS (
    SELECT page_id, psid, count(*)::int AS n,
           min(timestamp_ms) AS first_ms, max(timestamp_ms) AS last_ms,
           max(timestamp_ms) FILTER (WHERE direction = 'out') AS last_out_ms,
           max(timestamp_ms) FILTER (WHERE direction = 'in') AS last_in_ms
    FROM msg GROUP BY page_id, psid
), latest AS (
    SELECT DISTINCT ON (page_id, psid) page_id, psid, text, mid
    FROM msg ORDER BY page_id, psid, timestamp_ms DESC, mid COLLATE \"C\" DESC
), unread AS (
    SELECT m.page_id, m.psid, count(*)::int AS n
    FROM msg m JOIN agg a USING (page_id, psid) LEFT JOIN receipts r USING (page_id, psid)
    WHERE m.direction = 'in'
      AND m.timestamp_ms > GREATEST(coalesce(a.last_out_ms, -1), coalesce(r.read_watermark, -1))
    GROUP BY m.page_id, m.psid
), status AS (
    SELECT DISTINCT ON (x.page_id, x.psid) x.page_id, x.psid, x.status, x.at_ms, x.tie
    FROM (
        SELECT s.page_id, s.psid, s.status, s.at_ms, s.event_id AS tie
        FROM status_changes s JOIN t USING (page_id, psid)
        UNION ALL
        SELECT page_id, psid, 'open', timestamp_ms, mid FROM msg WHERE direction = 'in'
    ) x
    ORDER BY x.page_id, x.psid, x.at_ms DESC, x.tie COLLATE \"C\" DESC
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
    last_out_ms = agg.last_out_ms,
    last_in_ms = agg.last_in_ms
FROM t
    LEFT JOIN agg USING (page_id, psid)
    LEFT JOIN latest USING (page_id, psid)
    LEFT JOIN unread USING (page_id, psid)
    LEFT JOIN status USING (page_id, psid)
WHERE c.page_id = t.page_id AND c.psid = t.psid
RETURNING c.page_id, c.psid, c.message_count";
