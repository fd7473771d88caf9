//! Column vectors for the upserts of a batch, one statement per table.

use std::collections::BTreeMap;

use pagesync_schema::Platform;
use tokio_postgres::Transaction;

use super::Candidate;
use super::inbox::Names;
use super::summary::{Changes, NewMessage, NewStatus};
use crate::decode::{Detail, Effect, MessageRow};

/// Column vectors for every table a set of events writes, duplicates collapsed so
/// no statement touches a row twice.
#[derive(Default)]
pub(super) struct Rows {
    /// Each account an event names, with the platform of that event.
    pages: BTreeMap<String, Platform>,
    conversations: BTreeMap<(String, String), Platform>,
    /// Events without a conversation item of their own (`applied_other_events`).
    others: Applied,
    /// Conversation items by item id: the best-ranked copy, then the first in the stream.
    items: BTreeMap<String, Item>,
    receipts: BTreeMap<(String, String), (Option<i64>, Option<i64>)>,
    statuses: Statuses,
    reactions: Reactions,
    edits: Edits,
    names: Names,
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

struct Item {
    rank: i16,
    seq: u64,
    page: String,
    psid: String,
    event_type: &'static str,
    source: &'static str,
    ts: i64,
    in_file: bool,
    data: String,
    message: Option<MessageRow>,
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
    by_page: Vec<bool>,
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
    pub fn build(cands: &[&Candidate]) -> Self {
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
        if !c.recorded_as_item() {
            let a = &mut self.others;
            a.ids.push(id.clone());
            a.types.push(e.event_type.as_str());
            a.sources.push(e.source.as_str());
            a.ranks.push(rank);
            a.pages.push(e.page_id.as_ref().map(ToString::to_string));
            a.psids.push(e.psid.as_ref().map(ToString::to_string));
            a.seqs.push(c.seq as i64);
        }
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
                self.pages.insert(page.to_string(), e.platform);
                let at = e.time.timestamp_millis();
                let slot = self.snapshots.get(page.as_str());
                if slot.is_none_or(|old| newer(old, at)) {
                    self.snapshots
                        .insert(page.to_string(), (at, id.clone(), rank, data.clone()));
                }
            }
            Effect::PageChange { page, field, value } => {
                self.pages.insert(page.to_string(), e.platform);
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
                self.pages.insert(page.clone(), e.platform);
                self.conversations
                    .insert((page.clone(), psid.clone()), e.platform);
                let item_id = c.item_id().unwrap_or(e.id.as_str());
                let better = |old: &Item| (rank, c.seq) < (old.rank, old.seq);
                if self.items.get(item_id).is_none_or(better) {
                    let message = match detail {
                        Detail::Message(m) => Some(m.clone()),
                        _ => None,
                    };
                    let item = Item {
                        rank,
                        seq: c.seq,
                        page: page.clone(),
                        psid: psid.clone(),
                        event_type: e.event_type.as_str(),
                        source: e.source.as_str(),
                        ts: *timestamp_ms,
                        in_file: *in_file,
                        data: e.data.get().to_owned(),
                        message,
                    };
                    self.items.insert(item_id.to_owned(), item);
                }
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
            // The message is the item itself.
            Detail::Message(_) => {}
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
                by_page,
            } => {
                let r = &mut self.reactions;
                r.by_page.push(*by_page);
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
            Detail::Profile { name } => self.names.add(page, psid, ts, id, name),
            Detail::None => {}
        }
    }

    /// Runs the upserts; returns what the conversation summaries must take in.
    pub async fn execute(&self, tx: &Transaction<'_>) -> Result<Changes, tokio_postgres::Error> {
        // Pages and conversations first: every other row references them.
        self.execute_pages(tx).await?;
        self.execute_conversations(tx).await?;
        // The rest do not depend on each other. Polled together, they are pipelined
        // on the connection, so Postgres does not wait while the client encodes the
        // next statement.
        let (items, details, page, webhooks, others) = futures::join!(
            self.execute_items(tx),
            self.execute_details(tx),
            self.execute_page(tx),
            self.execute_webhooks(tx),
            self.execute_others(tx),
        );
        // After one statement fails, the ones behind it fail with "transaction
        // aborted"; the caller needs the cause (a data error makes poison, not a retry).
        let mut errors = Vec::new();
        let mut keep = |r: Result<(), tokio_postgres::Error>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        keep(page);
        keep(webhooks);
        keep(others);
        let (items, details) = match (items, details) {
            (Ok(items), Ok(details)) => (items, details),
            (items, details) => {
                errors.extend(items.err());
                errors.extend(details.err());
                (Changes::default(), Changes::default())
            }
        };
        if let Some(e) = first_cause(errors) {
            return Err(e);
        }
        let mut changes = items;
        changes.append(details);
        Ok(changes)
    }

    async fn execute_pages(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        if self.pages.is_empty() {
            return Ok(());
        }
        let (pages, platforms): (Vec<&str>, Vec<&str>) = self
            .pages
            .iter()
            .map(|(page, platform)| (page.as_str(), platform.as_str()))
            .unzip();
        // An account first seen by an event gets its platform; a row oauth-api made
        // (with its owner and linked page) is left as it is.
        tx.execute(
            "INSERT INTO pages (page_id, platform)
             SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            &[&pages, &platforms],
        )
        .await?;
        Ok(())
    }

    async fn execute_conversations(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        if self.conversations.is_empty() {
            return Ok(());
        }
        let mut p = Vec::with_capacity(self.conversations.len());
        let mut s = Vec::with_capacity(self.conversations.len());
        let mut platforms = Vec::with_capacity(self.conversations.len());
        for ((page, psid), platform) in &self.conversations {
            p.push(page.as_str());
            s.push(psid.as_str());
            platforms.push(platform.as_str());
        }
        tx.execute(
            "INSERT INTO conversations (page_id, psid, platform)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
            &[&p, &s, &platforms],
        )
        .await?;
        Ok(())
    }

    async fn execute_others(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        let a = &self.others;
        if a.ids.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO applied_other_events (event_id, event_type, source, source_rank, page_id, psid, stream_seq)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::text[], $6::text[], $7::int8[])
             ON CONFLICT (event_id) DO UPDATE SET
                 source = EXCLUDED.source, source_rank = EXCLUDED.source_rank,
                 stream_seq = EXCLUDED.stream_seq, applied_at = now()
             WHERE applied_other_events.source_rank > EXCLUDED.source_rank",
            &[&a.ids, &a.types, &a.sources, &a.ranks, &a.pages, &a.psids, &a.seqs],
        )
        .await?;
        Ok(())
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

    /// Upserts the conversation items; messages stored for the first time are
    /// folded into the summaries, a message replaced by a better copy has its
    /// conversation recomputed.
    async fn execute_items(&self, tx: &Transaction<'_>) -> Result<Changes, tokio_postgres::Error> {
        let mut changes = Changes::default();
        if self.items.is_empty() {
            return Ok(changes);
        }
        let items: Vec<(&String, &Item)> = self.items.iter().collect();
        let col = |f: fn(&Item) -> &str| items.iter().map(|(_, i)| f(i)).collect::<Vec<&str>>();
        let ids: Vec<&str> = items.iter().map(|(id, _)| id.as_str()).collect();
        let (pages, psids) = (col(|i| &i.page), col(|i| &i.psid));
        let (types, sources, data) = (col(|i| i.event_type), col(|i| i.source), col(|i| &i.data));
        let ranks: Vec<i16> = items.iter().map(|(_, i)| i.rank).collect();
        let ts: Vec<i64> = items.iter().map(|(_, i)| i.ts).collect();
        let in_file: Vec<bool> = items.iter().map(|(_, i)| i.in_file).collect();
        let seqs: Vec<i64> = items.iter().map(|(_, i)| i.seq as i64).collect();
        let messages: Vec<Option<&MessageRow>> =
            items.iter().map(|(_, i)| i.message.as_ref()).collect();
        let dirs: Vec<Option<&str>> = messages
            .iter()
            .map(|m| m.map(|m| if m.incoming { "in" } else { "out" }))
            .collect();
        let texts: Vec<Option<&str>> = messages
            .iter()
            .map(|m| m.and_then(|m| m.text.as_deref()))
            .collect();
        let atts: Vec<Option<&serde_json::Value>> = messages
            .iter()
            .map(|m| m.and_then(|m| m.attachments.as_ref()))
            .collect();
        let app_ids: Vec<Option<&str>> = messages
            .iter()
            .map(|m| m.and_then(|m| m.app_id.as_deref()))
            .collect();
        let rows = tx
            .query(
                "INSERT INTO conversation_events
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
                     attachments = EXCLUDED.attachments, app_id = EXCLUDED.app_id
                 WHERE conversation_events.source_rank > EXCLUDED.source_rank
                 RETURNING item_id, (xmax = 0) AS inserted",
                &[
                    &ids, &pages, &psids, &types, &sources, &ranks, &ts, &in_file, &data, &seqs,
                    &dirs, &texts, &atts, &app_ids,
                ],
            )
            .await?;
        for r in rows {
            let item_id: &str = r.get(0);
            let Some(item) = self.items.get(item_id) else {
                continue;
            };
            let Some(m) = &item.message else {
                continue;
            };
            if !r.get::<_, bool>(1) {
                changes
                    .recompute
                    .insert((item.page.clone(), item.psid.clone()));
                continue;
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
        Ok(changes)
    }

    async fn execute_details(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<Changes, tokio_postgres::Error> {
        let mut changes = Changes::default();
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
            // Only receipts that moved come back: their unread counts and marks change.
            let moved = tx
                .query(
                "INSERT INTO receipts (page_id, psid, delivery_watermark, read_watermark)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
                 ON CONFLICT (page_id, psid) DO UPDATE SET
                     delivery_watermark = GREATEST(receipts.delivery_watermark, EXCLUDED.delivery_watermark),
                     read_watermark = GREATEST(receipts.read_watermark, EXCLUDED.read_watermark)
                 WHERE receipts.delivery_watermark IS DISTINCT FROM
                           GREATEST(receipts.delivery_watermark, EXCLUDED.delivery_watermark)
                    OR receipts.read_watermark IS DISTINCT FROM
                           GREATEST(receipts.read_watermark, EXCLUDED.read_watermark)
                 RETURNING page_id, psid",
                &[&p, &s, &d, &r],
            )
            .await?;
            changes
                .receipts
                .extend(moved.iter().map(|r| (r.get(0), r.get(1))));
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
                "INSERT INTO reactions (event_id, page_id, psid, mid, action, reaction, emoji, timestamp_ms, source_rank, by_page)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                      $6::text[], $7::text[], $8::int8[], $9::int2[], $10::bool[])
                 ON CONFLICT (event_id) DO UPDATE SET
                     mid = EXCLUDED.mid, action = EXCLUDED.action, reaction = EXCLUDED.reaction,
                     emoji = EXCLUDED.emoji, timestamp_ms = EXCLUDED.timestamp_ms,
                     source_rank = EXCLUDED.source_rank, by_page = EXCLUDED.by_page
                 WHERE reactions.source_rank > EXCLUDED.source_rank",
                &[
                    &r.ids, &r.pages, &r.psids, &r.mids, &r.actions, &r.reactions, &r.emojis,
                    &r.ts, &r.ranks, &r.by_page,
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
        self.names.execute(tx).await?;
        Ok(changes)
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

/// The error that caused the others: the first that is not "current transaction is aborted".
fn first_cause(mut errors: Vec<tokio_postgres::Error>) -> Option<tokio_postgres::Error> {
    let aborted = Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION);
    let at = errors.iter().position(|e| e.code() != aborted).unwrap_or(0);
    (!errors.is_empty()).then(|| errors.swap_remove(at))
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
