//! What conversation events add beside their item: receipts, status changes,
//! reactions, edits and customers' names.

use pagesync_schema::{PageId, Psid};
use tokio_postgres::Transaction;

use super::super::prepare::Candidate;
use super::super::summary::{Changes, NewStatus};
use super::{Place, Rows};
use crate::decode::Detail;
use crate::parsed;

/// A conversation's newest delivery and read watermarks in a batch.
#[derive(Default)]
pub(super) struct Watermarks {
    delivery: Option<i64>,
    read: Option<i64>,
}

#[derive(Default)]
pub(super) struct Statuses {
    ids: Vec<String>,
    pages: Vec<PageId>,
    psids: Vec<Psid>,
    status: Vec<&'static str>,
    at: Vec<i64>,
    ranks: Vec<i16>,
}

#[derive(Default)]
pub(super) struct Reactions {
    ids: Vec<String>,
    pages: Vec<PageId>,
    psids: Vec<Psid>,
    mids: Vec<Option<String>>,
    actions: Vec<Option<String>>,
    reactions: Vec<Option<String>>,
    emojis: Vec<Option<String>>,
    by_page: Vec<bool>,
    ts: Vec<i64>,
    ranks: Vec<i16>,
}

#[derive(Default)]
pub(super) struct Edits {
    ids: Vec<String>,
    pages: Vec<PageId>,
    psids: Vec<Psid>,
    mids: Vec<Option<String>>,
    texts: Vec<Option<String>>,
    nums: Vec<Option<i32>>,
    ts: Vec<i64>,
    ranks: Vec<i16>,
}

/// A detail row's event id, conversation, time and rank.
struct Keys {
    id: String,
    page: PageId,
    psid: Psid,
    ts: i64,
    rank: i16,
}

impl Rows {
    pub(super) fn add_detail(&mut self, c: &Candidate, place: Place, detail: &Detail) {
        let k = Keys {
            id: c.event.id.to_string(),
            rank: c.event.source.rank(),
            page: place.page,
            psid: place.psid,
            ts: place.ts,
        };
        match detail {
            // The message is the item itself.
            Detail::Message(_) => {}
            Detail::Delivery { watermark } => {
                let marks = self.receipts.entry((k.page, k.psid)).or_default();
                marks.delivery = marks.delivery.max(Some(*watermark));
            }
            Detail::Read { watermark } => {
                let marks = self.receipts.entry((k.page, k.psid)).or_default();
                marks.read = marks.read.max(Some(*watermark));
            }
            Detail::Status { open, at_ms } => self.statuses.add(k, *open, *at_ms),
            Detail::Reaction { .. } => self.reactions.add(k, detail),
            Detail::Edit {
                mid,
                text,
                num_edit,
            } => self.edits.add(k, mid, text, *num_edit),
            Detail::Profile { name } => self.names.add(k.page, k.psid, k.ts, k.id, name),
            Detail::None => {}
        }
    }

    pub(super) async fn execute_details(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<Changes, tokio_postgres::Error> {
        let mut changes = Changes::default();
        self.execute_receipts(tx, &mut changes).await?;
        self.execute_statuses(tx, &mut changes).await?;
        self.execute_reactions(tx).await?;
        self.execute_edits(tx).await?;
        self.names.execute(tx).await?;
        Ok(changes)
    }

    /// Only receipts that moved come back: their unread counts and marks change.
    async fn execute_receipts(
        &self,
        tx: &Transaction<'_>,
        changes: &mut Changes,
    ) -> Result<(), tokio_postgres::Error> {
        if self.receipts.is_empty() {
            return Ok(());
        }
        let mut p = Vec::new();
        let mut s = Vec::new();
        let mut d = Vec::new();
        let mut r = Vec::new();
        for ((page, psid), marks) in &self.receipts {
            p.push(page.as_str());
            s.push(psid.as_str());
            d.push(marks.delivery);
            r.push(marks.read);
        }
        let moved = tx.query(UPSERT_RECEIPTS, &[&p, &s, &d, &r]).await?;
        for r in &moved {
            changes
                .receipts
                .insert((parsed::get(r, 0)?, parsed::get(r, 1)?));
        }
        Ok(())
    }

    async fn execute_statuses(
        &self,
        tx: &Transaction<'_>,
        changes: &mut Changes,
    ) -> Result<(), tokio_postgres::Error> {
        let st = &self.statuses;
        if st.ids.is_empty() {
            return Ok(());
        }
        let (pages, psids) = (
            strs(&st.pages, PageId::as_str),
            strs(&st.psids, Psid::as_str),
        );
        let rows = tx
            .query(
                UPSERT_STATUSES,
                &[&st.ids, &pages, &psids, &st.status, &st.at, &st.ranks],
            )
            .await?;
        for r in rows {
            let event_id: String = r.try_get(0)?;
            let (page, psid) = (parsed::get(&r, 1)?, parsed::get(&r, 2)?);
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
        Ok(())
    }

    async fn execute_reactions(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        let r = &self.reactions;
        if r.ids.is_empty() {
            return Ok(());
        }
        let (pages, psids) = (strs(&r.pages, PageId::as_str), strs(&r.psids, Psid::as_str));
        tx.execute(
            "INSERT INTO reactions (event_id, page_id, psid, mid, action, reaction, emoji, timestamp_ms, source_rank, by_page)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::int8[], $9::int2[], $10::bool[])
             ON CONFLICT (event_id) DO UPDATE SET
                 mid = EXCLUDED.mid, action = EXCLUDED.action, reaction = EXCLUDED.reaction,
                 emoji = EXCLUDED.emoji, timestamp_ms = EXCLUDED.timestamp_ms,
                 source_rank = EXCLUDED.source_rank, by_page = EXCLUDED.by_page
             WHERE reactions.source_rank > EXCLUDED.source_rank",
            &[
                &r.ids, &pages, &psids, &r.mids, &r.actions, &r.reactions, &r.emojis,
                &r.ts, &r.ranks, &r.by_page,
            ],
        )
        .await?;
        Ok(())
    }

    async fn execute_edits(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        let e = &self.edits;
        if e.ids.is_empty() {
            return Ok(());
        }
        let (pages, psids) = (strs(&e.pages, PageId::as_str), strs(&e.psids, Psid::as_str));
        tx.execute(
            "INSERT INTO message_edits (event_id, page_id, psid, mid, text, num_edit, timestamp_ms, source_rank)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::int4[], $7::int8[], $8::int2[])
             ON CONFLICT (event_id) DO UPDATE SET
                 mid = EXCLUDED.mid, text = EXCLUDED.text, num_edit = EXCLUDED.num_edit,
                 timestamp_ms = EXCLUDED.timestamp_ms, source_rank = EXCLUDED.source_rank
             WHERE message_edits.source_rank > EXCLUDED.source_rank",
            &[&e.ids, &pages, &psids, &e.mids, &e.texts, &e.nums, &e.ts, &e.ranks],
        )
        .await?;
        Ok(())
    }
}

impl Statuses {
    fn add(&mut self, k: Keys, open: bool, at_ms: i64) {
        self.ids.push(k.id);
        self.pages.push(k.page);
        self.psids.push(k.psid);
        self.status.push(if open { "open" } else { "closed" });
        self.at.push(at_ms);
        self.ranks.push(k.rank);
    }
}

impl Reactions {
    fn add(&mut self, k: Keys, detail: &Detail) {
        let Detail::Reaction {
            mid,
            action,
            reaction,
            emoji,
            by_page,
        } = detail
        else {
            return;
        };
        self.by_page.push(*by_page);
        self.ids.push(k.id);
        self.pages.push(k.page);
        self.psids.push(k.psid);
        self.mids.push(mid.clone());
        self.actions.push(action.clone());
        self.reactions.push(reaction.clone());
        self.emojis.push(emoji.clone());
        self.ts.push(k.ts);
        self.ranks.push(k.rank);
    }
}

impl Edits {
    fn add(&mut self, k: Keys, mid: &Option<String>, text: &Option<String>, num_edit: Option<i32>) {
        self.ids.push(k.id);
        self.pages.push(k.page);
        self.psids.push(k.psid);
        self.mids.push(mid.clone());
        self.texts.push(text.clone());
        self.nums.push(num_edit);
        self.ts.push(k.ts);
        self.ranks.push(k.rank);
    }
}

/// Ids as a text array parameter.
fn strs<T>(ids: &[T], as_str: fn(&T) -> &str) -> Vec<&str> {
    ids.iter().map(as_str).collect()
}

const UPSERT_RECEIPTS: &str = "INSERT INTO receipts (page_id, psid, delivery_watermark, read_watermark)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
                 ON CONFLICT (page_id, psid) DO UPDATE SET
                     delivery_watermark = GREATEST(receipts.delivery_watermark, EXCLUDED.delivery_watermark),
                     read_watermark = GREATEST(receipts.read_watermark, EXCLUDED.read_watermark)
                 WHERE receipts.delivery_watermark IS DISTINCT FROM
                           GREATEST(receipts.delivery_watermark, EXCLUDED.delivery_watermark)
                    OR receipts.read_watermark IS DISTINCT FROM
                           GREATEST(receipts.read_watermark, EXCLUDED.read_watermark)
                 RETURNING page_id, psid";

const UPSERT_STATUSES: &str = "INSERT INTO status_changes (event_id, page_id, psid, status, at_ms, source_rank)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int2[])
                 ON CONFLICT (event_id) DO UPDATE SET
                     status = EXCLUDED.status, at_ms = EXCLUDED.at_ms, source_rank = EXCLUDED.source_rank
                 WHERE status_changes.source_rank > EXCLUDED.source_rank
                 RETURNING event_id, page_id, psid, status, at_ms, (xmax = 0) AS inserted";
