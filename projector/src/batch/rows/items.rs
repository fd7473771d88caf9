//! Conversation items: one row per item of `conversation_events`.

use std::collections::BTreeMap;

use pagesync_schema::{PageId, Psid};
use tokio_postgres::{Row, Transaction};

use super::super::prepare::Candidate;
use super::super::summary::{Changes, NewMessage};
use super::{Place, Rows};
use crate::decode::{Detail, MessageRow};

pub(super) struct Item {
    pub rank: i16,
    pub seq: u64,
    page: PageId,
    psid: Psid,
    event_type: &'static str,
    source: &'static str,
    ts: i64,
    in_file: bool,
    data: String,
    message: Option<MessageRow>,
}

impl Item {
    pub fn of(c: &Candidate, place: &Place, in_file: bool, detail: &Detail) -> Self {
        let e = &c.event;
        Self {
            rank: e.source.rank(),
            seq: c.seq,
            page: place.page.clone(),
            psid: place.psid.clone(),
            event_type: e.event_type.as_str(),
            source: e.source.as_str(),
            ts: place.ts,
            in_file,
            data: e.data.get().to_owned(),
            message: match detail {
                Detail::Message(m) => Some(m.clone()),
                _ => None,
            },
        }
    }
}

impl Rows {
    /// Upserts the conversation items; messages stored for the first time are
    /// folded into the summaries, a message replaced by a better copy has its
    /// conversation recomputed.
    pub(super) async fn execute_items(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<Changes, tokio_postgres::Error> {
        let mut changes = Changes::default();
        if self.items.is_empty() {
            return Ok(changes);
        }
        let c = ItemColumns::of(&self.items);
        let rows = tx
            .query(
                UPSERT_ITEMS,
                &[
                    &c.ids,
                    &c.pages,
                    &c.psids,
                    &c.types,
                    &c.sources,
                    &c.ranks,
                    &c.ts,
                    &c.in_file,
                    &c.data,
                    &c.seqs,
                    &c.dirs,
                    &c.texts,
                    &c.attachments,
                    &c.app_ids,
                ],
            )
            .await?;
        for r in rows {
            self.note_item_written(&r, &mut changes);
        }
        Ok(changes)
    }

    /// A message stored for the first time is folded into its summary; one
    /// replaced by a better copy has its conversation recomputed.
    fn note_item_written(&self, r: &Row, changes: &mut Changes) {
        let item_id: &str = r.get(0);
        let Some(item) = self.items.get(item_id) else {
            return;
        };
        let Some(m) = &item.message else {
            return;
        };
        if !r.get::<_, bool>(1) {
            changes
                .recompute
                .insert((item.page.clone(), item.psid.clone()));
            return;
        }
        changes.messages.push(NewMessage {
            page: item.page.clone(),
            psid: item.psid.clone(),
            mid: item_id.to_owned(),
            incoming: m.incoming,
            ts: item.ts,
            text: m.text.clone(),
        });
    }
}

/// The items as the statement's column arrays.
struct ItemColumns<'a> {
    ids: Vec<&'a str>,
    pages: Vec<&'a str>,
    psids: Vec<&'a str>,
    types: Vec<&'a str>,
    sources: Vec<&'a str>,
    ranks: Vec<i16>,
    ts: Vec<i64>,
    in_file: Vec<bool>,
    data: Vec<&'a str>,
    seqs: Vec<i64>,
    dirs: Vec<Option<&'a str>>,
    texts: Vec<Option<&'a str>>,
    attachments: Vec<Option<&'a serde_json::Value>>,
    app_ids: Vec<Option<&'a str>>,
}

impl<'a> ItemColumns<'a> {
    fn of(items: &'a BTreeMap<String, Item>) -> Self {
        let n = items.len();
        let mut c = ItemColumns {
            ids: Vec::with_capacity(n),
            pages: Vec::with_capacity(n),
            psids: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            sources: Vec::with_capacity(n),
            ranks: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            in_file: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
            seqs: Vec::with_capacity(n),
            dirs: Vec::with_capacity(n),
            texts: Vec::with_capacity(n),
            attachments: Vec::with_capacity(n),
            app_ids: Vec::with_capacity(n),
        };
        for (id, i) in items {
            c.ids.push(id);
            c.pages.push(i.page.as_str());
            c.psids.push(i.psid.as_str());
            c.types.push(i.event_type);
            c.sources.push(i.source);
            c.ranks.push(i.rank);
            c.ts.push(i.ts);
            c.in_file.push(i.in_file);
            c.data.push(&i.data);
            c.seqs.push(i.seq as i64);
            let m = i.message.as_ref();
            c.dirs
                .push(m.map(|m| if m.incoming { "in" } else { "out" }));
            c.texts.push(m.and_then(|m| m.text.as_deref()));
            c.attachments.push(m.and_then(|m| m.attachments.as_ref()));
            c.app_ids.push(m.and_then(|m| m.app_id.as_deref()));
        }
        c
    }
}

/// `item_version` takes its default, the next `conversation_item_version`, on an
/// insert and on a replacement alike (the files' cache reads what changed by it).
const UPSERT_ITEMS: &str = "
INSERT INTO conversation_events
    (item_id, page_id, psid, event_type, source, source_rank, timestamp_ms,
     in_file, data, stream_seq, direction, text, attachments, app_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::int2[], $7::int8[], $8::bool[], $9::text[], $10::int8[],
                     $11::text[], $12::text[], $13::jsonb[], $14::text[])
ON CONFLICT (item_id) DO UPDATE SET
    page_id = EXCLUDED.page_id, psid = EXCLUDED.psid, event_type = EXCLUDED.event_type,
    source = EXCLUDED.source, source_rank = EXCLUDED.source_rank,
    timestamp_ms = EXCLUDED.timestamp_ms, in_file = EXCLUDED.in_file,
    data = EXCLUDED.data, stream_seq = EXCLUDED.stream_seq, applied_at = now(),
    direction = EXCLUDED.direction, text = EXCLUDED.text,
    attachments = EXCLUDED.attachments, app_id = EXCLUDED.app_id,
    item_version = EXCLUDED.item_version
WHERE conversation_events.source_rank > EXCLUDED.source_rank
RETURNING item_id, (xmax = 0) AS inserted";
