//! What the inbox API reads beyond the conversation summaries (docs/inbox.md,
//! "What the projector stores"): customers' names, unread counts after a read
//! receipt, and the change feed behind `GET /api/events`.

use std::collections::{BTreeMap, BTreeSet};

use pagesync_schema::{PageId, Psid};
use tokio_postgres::Transaction;

/// The channel oauth-api listens on; the payload is empty (it tails the table).
pub const CHANGES_CHANNEL: &str = "pagesync_conversation_changes";

/// How long change rows are kept for clients resuming with `Last-Event-ID`.
const CHANGES_KEPT: &str = "24 hours";

/// The newest `customer_profile` of each conversation in a batch, by (time, id).
#[derive(Default)]
pub(super) struct Names {
    newest: BTreeMap<(PageId, Psid), Profile>,
}

impl Names {
    pub fn add(&mut self, page: PageId, psid: Psid, at_ms: i64, event_id: String, name: &str) {
        let slot = self.newest.entry((page, psid));
        let candidate = Profile {
            at_ms,
            event_id,
            name: name.to_owned(),
        };
        match slot {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(candidate);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if candidate.order() > o.get().order() {
                    o.insert(candidate);
                }
            }
        }
    }

    /// Replaces a conversation's name when this one is newer by (time, id): the
    /// maximum commutes, so any order of profiles gives the same name.
    pub async fn execute(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        if self.newest.is_empty() {
            return Ok(());
        }
        let pages: Vec<&str> = self.newest.keys().map(|k| k.0.as_str()).collect();
        let psids: Vec<&str> = self.newest.keys().map(|k| k.1.as_str()).collect();
        let at: Vec<i64> = self.newest.values().map(|v| v.at_ms).collect();
        let ids: Vec<&str> = self.newest.values().map(|v| v.event_id.as_str()).collect();
        let names: Vec<&str> = self.newest.values().map(|v| v.name.as_str()).collect();
        tx.execute(
            "UPDATE conversations c SET
                 customer_name = x.name, customer_name_at_ms = x.at_ms, customer_name_tie = x.id
             FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[])
                 AS x(page_id, psid, at_ms, id, name)
             WHERE c.page_id = x.page_id AND c.psid = x.psid
               AND (c.customer_name_at_ms IS NULL
                    OR (x.at_ms, x.id COLLATE \"C\") > (c.customer_name_at_ms, c.customer_name_tie))",
            &[&pages, &psids, &at, &ids, &names],
        )
        .await?;
        Ok(())
    }
}

/// A customer's name as one `customer_profile` gives it.
struct Profile {
    at_ms: i64,
    event_id: String,
    name: String,
}

impl Profile {
    /// Newer by (time, event id) wins.
    fn order(&self) -> (i64, &str) {
        (self.at_ms, &self.event_id)
    }
}

/// Recounts the unread messages of conversations whose read watermark moved
/// (run after the summaries, so it sees the batch's messages and replies).
pub(super) async fn recount_unread(
    tx: &Transaction<'_>,
    conversations: &BTreeSet<(PageId, Psid)>,
) -> Result<(), tokio_postgres::Error> {
    execute_keyed(tx, RECOUNT_UNREAD, conversations).await
}

const RECOUNT_UNREAD: &str = "
UPDATE conversations c SET unread_count = (
    SELECT count(*)::int FROM conversation_events m
    WHERE m.page_id = c.page_id AND m.psid = c.psid AND m.in_file AND m.direction = 'in'
      AND m.timestamp_ms > GREATEST(coalesce(c.last_out_ms, -1), coalesce(r.read_watermark, -1)))
FROM unnest($1::text[], $2::text[]) AS t(page_id, psid)
    LEFT JOIN receipts r USING (page_id, psid)
WHERE c.page_id = t.page_id AND c.psid = t.psid";

/// Records the conversations a batch changed and notifies listeners; the
/// notification is delivered when the transaction commits, with the rows. Rows
/// older than a day go: a client resuming later reloads the list instead.
pub(super) async fn record_changes(
    tx: &Transaction<'_>,
    conversations: &BTreeSet<(PageId, Psid)>,
) -> Result<(), tokio_postgres::Error> {
    if conversations.is_empty() {
        return Ok(());
    }
    let record = execute_keyed(
        tx,
        "INSERT INTO conversation_changes (page_id, psid)
         SELECT * FROM unnest($1::text[], $2::text[])",
        conversations,
    );
    let notify = format!("NOTIFY {CHANGES_CHANNEL}");
    let prune = format!(
        "DELETE FROM conversation_changes WHERE changed_at < now() - interval '{CHANGES_KEPT}'"
    );
    let (recorded, notified, pruned) =
        futures::join!(record, tx.batch_execute(&notify), tx.batch_execute(&prune));
    recorded?;
    notified?;
    pruned?;
    Ok(())
}

/// Runs `sql` with the (page, psid) pairs as its two column arrays `$1`, `$2`.
pub(super) async fn execute_keyed(
    tx: &Transaction<'_>,
    sql: &str,
    conversations: &BTreeSet<(PageId, Psid)>,
) -> Result<(), tokio_postgres::Error> {
    if conversations.is_empty() {
        return Ok(());
    }
    let (pages, psids): (Vec<&str>, Vec<&str>) = conversations
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .unzip();
    tx.execute(sql, &[&pages, &psids]).await?;
    Ok(())
}
