//! Parsing and decoding a batch before any SQL runs: bad messages become dead
//! letters, and one copy of each event id is kept.

use std::collections::{BTreeMap, BTreeSet};

use pagesync_schema::{Event, PageId, Psid, Source};

use super::Incoming;
use super::dead_letters::DeadLetter;
use crate::decode::{self, Detail, Effect};

/// One event of the batch that may be applied.
pub(super) struct Candidate {
    pub idx: usize,
    pub seq: u64,
    pub subject: String,
    pub event: Event,
    pub effect: Effect,
    /// Where the batch's earliest copy of this id was (webhook coverage: where it
    /// was first seen).
    pub first: FirstCopy,
}

/// The stream sequence and source of a batch's earliest copy of an event id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct FirstCopy {
    pub seq: u64,
    pub source: Source,
}

impl Candidate {
    /// The conversation item this event is stored as: the mid of the message it
    /// carries (a `standby` item's message is the same message as a poll's copy),
    /// else its own id. `None` for events outside conversations.
    pub fn item_id(&self) -> Option<&str> {
        match &self.effect {
            Effect::Conversation {
                detail: Detail::Message(m),
                ..
            } => Some(&m.mid),
            Effect::Conversation { .. } => Some(self.event.id.as_str()),
            _ => None,
        }
    }

    /// Whether the event's conversation item records it as applied; otherwise a
    /// row of `applied_other_events` does.
    pub fn recorded_as_item(&self) -> bool {
        self.item_id() == Some(self.event.id.as_str())
    }

    /// Which copy of an event id wins: the best-ranked source, then the first in the stream.
    fn precedence(&self) -> (i16, u64) {
        (self.event.source.rank(), self.seq)
    }
}

/// A batch parsed and decoded, ready to apply (CPU work that can run while the
/// previous batch is in the database).
pub struct Prepared {
    pub(super) candidates: Vec<Candidate>,
    pub(super) dead: Vec<DeadLetter>,
    pub(super) duplicates: u64,
    pub(super) pages: BTreeSet<PageId>,
    pub(super) conversations: BTreeSet<(PageId, Psid)>,
}

/// Parses and decodes a batch, keeping the winning copy of each event id.
pub fn prepare(batch: &[Incoming]) -> Prepared {
    let mut best: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut prepared = Prepared {
        candidates: Vec::new(),
        dead: Vec::new(),
        duplicates: 0,
        pages: BTreeSet::new(),
        conversations: BTreeSet::new(),
    };
    for (idx, msg) in batch.iter().enumerate() {
        let cand = match read(idx, msg) {
            Ok(cand) => cand,
            Err(dead) => {
                prepared.dead.push(*dead);
                continue;
            }
        };
        prepared.touch(&cand.effect);
        if keep_best(&mut best, cand) {
            prepared.duplicates += 1;
        }
    }
    prepared.candidates = best.into_values().collect();
    prepared
}

impl Prepared {
    /// Notes the files an event touches. Duplicates touch their files too: a crash
    /// after commit but before the files were written is repaired by the redelivery.
    fn touch(&mut self, effect: &Effect) {
        match effect {
            Effect::Conversation { page, psid, .. } => {
                self.conversations.insert((page.clone(), psid.clone()));
            }
            Effect::PageSnapshot { page, .. } | Effect::PageChange { page, .. } => {
                self.pages.insert(page.clone());
            }
            Effect::Nothing => {}
        }
    }
}

/// Parses and decodes one message; one that fails either is a dead letter.
fn read(idx: usize, msg: &Incoming) -> Result<Candidate, Box<DeadLetter>> {
    let dead = |event: Option<&Event>, error: &str| {
        Box::new(DeadLetter::of_message(idx, msg, event, error))
    };
    let event = Event::from_json(&msg.payload).map_err(|e| dead(None, &e.to_string()))?;
    let effect = decode::decode(&event).map_err(|e| dead(Some(&event), &e.0))?;
    Ok(Candidate {
        idx,
        seq: msg.seq,
        subject: decode::strip_nul(&msg.subject),
        first: FirstCopy {
            seq: msg.seq,
            source: event.source,
        },
        event,
        effect,
    })
}

/// Keeps the winning copy of the candidate's event id, and the earliest copy's
/// origin; returns whether another copy was there already.
fn keep_best(best: &mut BTreeMap<String, Candidate>, cand: Candidate) -> bool {
    let Some(existing) = best.get_mut(cand.event.id.as_str()) else {
        best.insert(cand.event.id.to_string(), cand);
        return false;
    };
    let first = existing.first.min(cand.first);
    if cand.precedence() < existing.precedence() {
        *existing = cand;
    }
    existing.first = first;
    true
}
