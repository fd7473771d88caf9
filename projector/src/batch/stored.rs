//! What the projection already holds for a batch's candidates: the duplicate check.

use std::collections::BTreeMap;

use pagesync_schema::{PageId, Psid};
use tokio_postgres::Transaction;

use super::prepare::Candidate;
use crate::parsed::Parsed;

/// The stored copy of a conversation item.
pub(super) struct StoredItem {
    pub rank: i16,
    pub page: PageId,
    pub psid: Psid,
}

pub(super) struct Stored {
    /// Conversation items by item id.
    pub items: BTreeMap<String, StoredItem>,
    /// `applied_other_events` by event id: rank of the stored copy.
    pub others: BTreeMap<String, i16>,
}

impl Stored {
    pub async fn load(
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
            let page: Option<Parsed<PageId>> = r.try_get(2)?;
            let psid: Option<Parsed<Psid>> = r.try_get(3)?;
            match (page, psid) {
                (Some(Parsed(page)), Some(Parsed(psid))) => {
                    stored.items.insert(id, StoredItem { rank, page, psid });
                }
                _ => {
                    stored.others.insert(id, rank);
                }
            }
        }
        Ok(stored)
    }

    /// The rank of the copy of this event already applied, if any.
    pub fn rank_of(&self, cand: &Candidate) -> Option<i16> {
        let id = cand.event.id.as_str();
        if cand.recorded_as_item() {
            self.items.get(id).map(|item| item.rank)
        } else {
            self.others.get(id).copied()
        }
    }
}
