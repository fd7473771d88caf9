//! Column vectors for the upserts of a batch, one statement per table.

mod details;
mod items;
mod page;

use std::collections::BTreeMap;

use pagesync_schema::{PageId, Platform, Psid};
use tokio_postgres::Transaction;

use super::inbox::Names;
use super::prepare::Candidate;
use super::summary::Changes;
use crate::decode::{Detail, Effect};
use details::{Edits, Reactions, Statuses, Watermarks};
use items::Item;
use page::{Others, Versioned};

/// Column vectors for every table a set of events writes, duplicates collapsed so
/// no statement touches a row twice.
#[derive(Default)]
pub(super) struct Rows {
    /// Each account an event names, with the platform of that event.
    pages: BTreeMap<PageId, Platform>,
    conversations: BTreeMap<(PageId, Psid), Platform>,
    /// Events without a conversation item of their own (`applied_other_events`).
    others: Others,
    /// Conversation items by item id: the best-ranked copy, then the first in the stream.
    items: BTreeMap<String, Item>,
    receipts: BTreeMap<(PageId, Psid), Watermarks>,
    statuses: Statuses,
    reactions: Reactions,
    edits: Edits,
    names: Names,
    snapshots: BTreeMap<PageId, Versioned>,
    fields: BTreeMap<(PageId, String), Versioned>,
    /// Per page, the newest `receivedat` of the ingest events applied.
    webhooks: BTreeMap<PageId, chrono::DateTime<chrono::Utc>>,
}

/// Where a conversation event goes: its conversation and its time.
struct Place {
    page: PageId,
    psid: Psid,
    ts: i64,
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
        if !c.recorded_as_item() {
            self.others.add(c);
        }
        self.note_webhook(c);
        match &c.effect {
            Effect::Nothing => {}
            Effect::PageSnapshot { page, data } => {
                self.pages.insert(page.clone(), c.event.platform);
                let version = Versioned::of(c, data);
                let slot = self.snapshots.entry(page.clone());
                version.keep_newest(slot);
            }
            Effect::PageChange { page, field, value } => {
                self.pages.insert(page.clone(), c.event.platform);
                let version = Versioned::of(c, value);
                let slot = self.fields.entry((page.clone(), field.clone()));
                version.keep_newest(slot);
            }
            Effect::Conversation {
                page,
                psid,
                timestamp_ms,
                in_file,
                detail,
            } => {
                let place = Place {
                    page: page.clone(),
                    psid: psid.clone(),
                    ts: *timestamp_ms,
                };
                self.add_conversation(c, &place, *in_file, detail);
                self.add_detail(c, place, detail);
            }
        }
    }

    /// `integrations.last_webhook_at` follows the newest ingest event of each page.
    fn note_webhook(&mut self, c: &Candidate) {
        let e = &c.event;
        if e.source == pagesync_schema::Source::Ingest
            && let Some(page) = &e.page_id
        {
            let at = self.webhooks.entry(page.clone()).or_insert(e.received_at);
            *at = (*at).max(e.received_at);
        }
    }

    /// The conversation and its item: the best-ranked copy, then the first in the stream.
    fn add_conversation(&mut self, c: &Candidate, place: &Place, in_file: bool, detail: &Detail) {
        let e = &c.event;
        self.pages.insert(place.page.clone(), e.platform);
        self.conversations
            .insert((place.page.clone(), place.psid.clone()), e.platform);
        let item_id = c.item_id().unwrap_or(e.id.as_str());
        let rank = e.source.rank();
        let better = |old: &Item| (rank, c.seq) < (old.rank, old.seq);
        if self.items.get(item_id).is_none_or(better) {
            let item = Item::of(c, place, in_file, detail);
            self.items.insert(item_id.to_owned(), item);
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
            self.others.execute(tx),
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
}

/// The error that caused the others: the first that is not "current transaction is aborted".
fn first_cause(mut errors: Vec<tokio_postgres::Error>) -> Option<tokio_postgres::Error> {
    let aborted = Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION);
    let at = errors.iter().position(|e| e.code() != aborted).unwrap_or(0);
    (!errors.is_empty()).then(|| errors.swap_remove(at))
}
