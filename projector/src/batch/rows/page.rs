//! The page-level rows of a batch (accounts, snapshots, field changes, the last
//! webhook), the conversations, and the events without an item of their own.

use std::collections::btree_map::Entry;

use pagesync_schema::PageId;
use tokio_postgres::Transaction;

use super::super::prepare::Candidate;
use super::Rows;

/// `applied_other_events` rows: events without a conversation item of their own.
#[derive(Default)]
pub(super) struct Others {
    ids: Vec<String>,
    types: Vec<&'static str>,
    sources: Vec<&'static str>,
    ranks: Vec<i16>,
    pages: Vec<Option<String>>,
    psids: Vec<Option<String>>,
    seqs: Vec<i64>,
}

impl Others {
    pub fn add(&mut self, c: &Candidate) {
        let e = &c.event;
        self.ids.push(e.id.to_string());
        self.types.push(e.event_type.as_str());
        self.sources.push(e.source.as_str());
        self.ranks.push(e.source.rank());
        self.pages.push(e.page_id.as_ref().map(ToString::to_string));
        self.psids.push(e.psid.as_ref().map(ToString::to_string));
        self.seqs.push(c.seq as i64);
    }

    pub async fn execute(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        let a = self;
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
}

/// A page snapshot or field value with what orders its copies: newer wins; the
/// same event id lets the better-ranked copy win.
pub(super) struct Versioned {
    at: i64,
    event_id: String,
    rank: i16,
    value: serde_json::Value,
}

impl Versioned {
    pub fn of(c: &Candidate, value: &serde_json::Value) -> Self {
        Self {
            at: c.event.time.timestamp_millis(),
            event_id: c.event.id.to_string(),
            rank: c.event.source.rank(),
            value: value.clone(),
        }
    }

    fn supersedes(&self, old: &Versioned) -> bool {
        (self.at, self.event_id.as_str()) > (old.at, old.event_id.as_str())
            || (self.event_id == old.event_id && self.rank < old.rank)
    }

    /// Stores this version in `slot` unless the one there supersedes it.
    pub fn keep_newest<K: Ord>(self, slot: Entry<'_, K, Versioned>) {
        match slot {
            Entry::Vacant(v) => {
                v.insert(self);
            }
            Entry::Occupied(mut o) => {
                if self.supersedes(o.get()) {
                    o.insert(self);
                }
            }
        }
    }
}

impl Rows {
    pub(super) async fn execute_pages(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<(), tokio_postgres::Error> {
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

    pub(super) async fn execute_conversations(
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

    /// `integrations.last_webhook_at`: the newest `receivedat` of an applied ingest event.
    pub(super) async fn execute_webhooks(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        if self.webhooks.is_empty() {
            return Ok(());
        }
        let pages: Vec<&str> = self.webhooks.keys().map(PageId::as_str).collect();
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

    pub(super) async fn execute_page(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        self.execute_snapshots(tx).await?;
        self.execute_fields(tx).await
    }

    async fn execute_snapshots(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        if !self.snapshots.is_empty() {
            let pages: Vec<&str> = self.snapshots.keys().map(PageId::as_str).collect();
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
        Ok(())
    }

    async fn execute_fields(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
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

/// Versions as the statement's column arrays.
type Columns<'a> = (Vec<i64>, Vec<&'a str>, Vec<i16>, Vec<&'a serde_json::Value>);

fn columns<'a>(values: impl Iterator<Item = &'a Versioned>) -> Columns<'a> {
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for v in values {
        out.0.push(v.at);
        out.1.push(v.event_id.as_str());
        out.2.push(v.rank);
        out.3.push(&v.value);
    }
    out
}
