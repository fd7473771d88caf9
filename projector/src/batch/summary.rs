//! Conversation summaries: folded from what a batch stored for the first time,
//! recomputed where a stored row was replaced by a better copy.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Transaction;

/// What a batch changed that the conversation summaries depend on.
#[derive(Default)]
pub(super) struct Changes {
    /// Messages stored for the first time (their mid was unknown).
    pub messages: Vec<NewMessage>,
    /// Status changes stored for the first time.
    pub statuses: Vec<NewStatus>,
    /// Conversations where a stored row was replaced by a better copy: recomputed in full.
    pub recompute: BTreeSet<(String, String)>,
}

pub(super) struct NewMessage {
    pub page: String,
    pub psid: String,
    pub mid: String,
    pub incoming: bool,
    pub ts: i64,
    pub text: Option<String>,
}

pub(super) struct NewStatus {
    pub page: String,
    pub psid: String,
    pub status: &'static str,
    pub at_ms: i64,
    pub event_id: String,
}

impl Changes {
    pub fn append(&mut self, mut other: Changes) {
        self.messages.append(&mut other.messages);
        self.statuses.append(&mut other.statuses);
        self.recompute.append(&mut other.recompute);
    }
}

/// Brings the summaries of the conversations a batch changed up to date: additions
/// are folded in (counts add up, bounds and "newest" are maxima, which commute),
/// conversations where a row was replaced are recomputed from their tables.
/// Returns each updated conversation's message count.
pub(super) async fn summarize(
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
        THEN (SELECT count(*)::int FROM conversation_events x
              WHERE x.page_id = c.page_id AND x.psid = c.psid AND x.in_file
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
           max(timestamp_ms) FILTER (WHERE direction = 'out') AS last_out_ms
    FROM msg GROUP BY page_id, psid
), latest AS (
    SELECT DISTINCT ON (page_id, psid) page_id, psid, text, mid
    FROM msg ORDER BY page_id, psid, timestamp_ms DESC, mid DESC
), unread AS (
    SELECT m.page_id, m.psid, count(*)::int AS n
    FROM msg m JOIN agg a USING (page_id, psid)
    WHERE m.direction = 'in' AND m.timestamp_ms > coalesce(a.last_out_ms, -1)
    GROUP BY m.page_id, m.psid
), status AS (
    SELECT DISTINCT ON (x.page_id, x.psid) x.page_id, x.psid, x.status, x.at_ms, x.tie
    FROM (
        SELECT s.page_id, s.psid, s.status, s.at_ms, s.event_id AS tie
        FROM status_changes s JOIN t USING (page_id, psid)
        UNION ALL
        SELECT page_id, psid, 'open', timestamp_ms, mid FROM msg WHERE direction = 'in'
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
