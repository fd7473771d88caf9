//! One batch in one transaction: take the apply lock, skip what is stored already,
//! upsert the rest, bring the summaries and the inbox's change feed up to date,
//! record the dead letters, commit.

use std::collections::{BTreeMap, BTreeSet};

use pagesync_schema::{PageId, Psid};
use tokio_postgres::Transaction;

use super::dead_letters::{self, DeadLetter};
use super::prepare::{Candidate, Prepared};
use super::rows::Rows;
use super::stored::Stored;
use super::summary::{Changes, NewMessage, summarize};
use super::{ApplyError, Mode, Outcome, first_seen, inbox, is_data_error};
use crate::decode::Effect;

/// Takes the lock that serializes batch transactions (key "pageappl"; distinct
/// from the migration lock, so a service migrating at start never waits on a batch).
/// A simple query: no statement to prepare.
const LOCK_APPLY: &str = "SELECT pg_advisory_xact_lock(8097867290112979052)";

/// How the upserts of a batch are sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Granularity {
    /// All events together, one statement per table.
    Batch,
    /// Each event in its own savepoint, to set aside the ones the database refuses.
    EventByEvent,
}

/// Applies the batch; when its data fails, again event by event to set the
/// culprits aside.
pub(super) async fn apply_or_isolate(
    client: &mut tokio_postgres::Client,
    prepared: &Prepared,
    mode: Mode,
) -> Result<Outcome, ApplyError> {
    match apply_once(client, prepared, Granularity::Batch, mode).await {
        Err(e) if e.is_data() => {
            tracing::warn!(error = %crate::error::chain(&e), "batch failed on its data; applying it event by event");
            apply_once(client, prepared, Granularity::EventByEvent, mode).await
        }
        other => other,
    }
}

/// The candidates that go on after the duplicate check.
struct Selected<'p> {
    to_apply: Vec<&'p Candidate>,
    /// Conversations that lose an item to a better copy filed under another conversation.
    moved_from: BTreeSet<(PageId, Psid)>,
}

/// What the upserts did: the summaries' input, and the events refused (by index).
struct Executed {
    changes: Changes,
    refused: Vec<usize>,
}

async fn apply_once(
    client: &mut tokio_postgres::Client,
    prepared: &Prepared,
    granularity: Granularity,
    mode: Mode,
) -> Result<Outcome, ApplyError> {
    let mut tx = client.transaction().await?;
    // One applier at a time, from before it reads what is stored: the duplicate
    // checks and the summaries are read-modify-write. The lock is sent with the
    // first query (one round trip).
    let (locked, stored) = futures::join!(
        tx.batch_execute(LOCK_APPLY),
        Stored::load(&tx, &prepared.candidates)
    );
    locked?;
    let stored = stored?;
    let mut outcome = Outcome {
        duplicates: prepared.duplicates,
        pages: prepared.pages.clone(),
        conversations: prepared.conversations.clone(),
        ..Outcome::default()
    };
    let selected = select(prepared, &stored, &mut outcome);
    let executed = match granularity {
        Granularity::Batch => execute_batch(&tx, &selected.to_apply, &mut outcome).await?,
        Granularity::EventByEvent => {
            execute_one_by_one(&mut tx, &selected.to_apply, &mut outcome).await?
        }
    };
    finish(&tx, prepared, selected, executed, &mut outcome, mode).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Skips the events stored already by an equal or better copy, and notes the
/// conversations a better copy takes an item from.
fn select<'p>(prepared: &'p Prepared, stored: &Stored, outcome: &mut Outcome) -> Selected<'p> {
    let mut selected = Selected {
        to_apply: Vec::new(),
        moved_from: BTreeSet::new(),
    };
    for cand in &prepared.candidates {
        let rank = cand.event.source.rank();
        if stored.rank_of(cand).is_some_and(|stored| stored <= rank) {
            outcome.duplicates += 1;
            continue;
        }
        if let (Some(item), Effect::Conversation { page, psid, .. }) =
            (cand.item_id(), &cand.effect)
            && let Some(old) = stored.items.get(item)
            && old.rank > rank
            && (&old.page, &old.psid) != (page, psid)
        {
            let old = (old.page.clone(), old.psid.clone());
            outcome.conversations.insert(old.clone());
            selected.moved_from.insert(old);
        }
        selected.to_apply.push(cand);
    }
    selected
}

async fn execute_batch(
    tx: &Transaction<'_>,
    to_apply: &[&Candidate],
    outcome: &mut Outcome,
) -> Result<Executed, ApplyError> {
    let changes = Rows::build(to_apply).execute(tx).await?;
    first_seen::record(tx, to_apply, &mut outcome.first_seen).await?;
    Ok(Executed {
        changes,
        refused: Vec::new(),
    })
}

async fn execute_one_by_one(
    tx: &mut Transaction<'_>,
    to_apply: &[&Candidate],
    outcome: &mut Outcome,
) -> Result<Executed, ApplyError> {
    let mut executed = Executed {
        changes: Changes::default(),
        refused: Vec::new(),
    };
    for cand in to_apply {
        let sp = tx.savepoint("event").await?;
        let applied = match Rows::build(&[cand]).execute(&sp).await {
            Ok(more) => first_seen::record(&sp, &[cand], &mut outcome.first_seen)
                .await
                .map(|()| more),
            Err(e) => Err(e),
        };
        match applied {
            Ok(more) => {
                sp.commit().await?;
                executed.changes.append(more);
            }
            Err(e) if is_data_error(&e) => {
                sp.rollback().await?;
                executed.refused.push(cand.idx);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(executed)
}

/// Everything after the upserts: counts, summaries, the change feed, dead letters.
async fn finish(
    tx: &Transaction<'_>,
    prepared: &Prepared,
    selected: Selected<'_>,
    executed: Executed,
    outcome: &mut Outcome,
    mode: Mode,
) -> Result<(), ApplyError> {
    let Executed {
        mut changes,
        refused,
    } = executed;
    // Events the database refused become dead letters with its complaint.
    let late: Vec<DeadLetter> = selected
        .to_apply
        .iter()
        .filter(|c| refused.contains(&c.idx))
        .map(|c| DeadLetter::refused(c))
        .collect();
    for cand in selected
        .to_apply
        .iter()
        .filter(|c| !refused.contains(&c.idx))
    {
        *outcome.applied.entry(cand.event.event_type).or_default() += 1;
    }
    let changed = changed_conversations(&selected.to_apply, &refused, &selected.moved_from);
    reset_items(tx, &selected.moved_from).await?;
    changes.recompute.extend(selected.moved_from);
    update_summaries(tx, &changes, &changed, mode).await?;
    let dead: Vec<&DeadLetter> = prepared.dead.iter().chain(&late).collect();
    outcome.new_dead_letters = dead_letters::record(tx, &dead).await?;
    outcome.poison = dead.iter().map(|d| d.idx).collect();
    Ok(())
}

async fn update_summaries(
    tx: &Transaction<'_>,
    changes: &Changes,
    changed: &BTreeSet<(PageId, Psid)>,
    mode: Mode,
) -> Result<(), tokio_postgres::Error> {
    let started = std::time::Instant::now();
    let counts = summarize(tx, changes).await?;
    inbox::recount_unread(tx, &changes.receipts).await?;
    inbox::record_changes(tx, changed).await?;
    tracing::debug!(
        new_messages = changes.messages.len(),
        recomputed = changes.recompute.len(),
        summary_ms = started.elapsed().as_millis() as u64,
        "conversation summaries updated"
    );
    log_conversations(&changes.messages, &counts, mode);
    Ok(())
}

/// Conversations that lost an item are read whole at their next rewrite (the
/// files' cache only asks for items written since).
async fn reset_items(
    tx: &Transaction<'_>,
    conversations: &BTreeSet<(PageId, Psid)>,
) -> Result<(), tokio_postgres::Error> {
    inbox::execute_keyed(
        tx,
        "UPDATE conversations c SET items_reset = nextval('conversation_item_version')
         FROM unnest($1::text[], $2::text[]) AS t(page_id, psid)
         WHERE c.page_id = t.page_id AND c.psid = t.psid",
        conversations,
    )
    .await
}

/// The conversations whose API view the batch changed: those of the events it
/// applied, and those that lost an item to another conversation.
fn changed_conversations(
    applied: &[&Candidate],
    refused: &[usize],
    moved_from: &BTreeSet<(PageId, Psid)>,
) -> BTreeSet<(PageId, Psid)> {
    let mut changed = moved_from.clone();
    for cand in applied.iter().filter(|c| !refused.contains(&c.idx)) {
        if let Effect::Conversation { page, psid, .. } = &cand.effect {
            changed.insert((page.clone(), psid.clone()));
        }
    }
    changed
}

/// Logs `new conversation` for the first message of a (page, psid), else
/// `continuing conversation`; at DEBUG while replaying history.
fn log_conversations(inserted: &[NewMessage], counts: &BTreeMap<(PageId, Psid), i32>, mode: Mode) {
    let mut seen: BTreeMap<(&PageId, &Psid), i32> = BTreeMap::new();
    for m in inserted {
        *seen.entry((&m.page, &m.psid)).or_default() += 1;
    }
    for ((page, psid), new) in seen {
        let total = counts
            .get(&(page.clone(), psid.clone()))
            .copied()
            .unwrap_or(new);
        let (page_id, psid) = (page.as_str(), psid.as_str());
        for i in 0..new {
            let first = total - new == 0 && i == 0;
            match (first, mode) {
                (true, Mode::Live) => tracing::info!(page_id, psid, "new conversation"),
                (false, Mode::Live) => tracing::info!(page_id, psid, "continuing conversation"),
                (true, Mode::Replay) => tracing::debug!(page_id, psid, "new conversation"),
                (false, Mode::Replay) => tracing::debug!(page_id, psid, "continuing conversation"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_apply_lock_key_is_pageappl() {
        assert_eq!(
            super::LOCK_APPLY,
            format!(
                "SELECT pg_advisory_xact_lock({})",
                i64::from_be_bytes(*b"pageappl")
            )
        );
    }
}
