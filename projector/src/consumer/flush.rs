//! Writing the files of committed batches, then acknowledging their messages.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Message};
use pagesync_schema::{PageId, Psid};

use super::{TurnError, Worker};
use crate::backoff;
use crate::batch::Outcome;
use crate::error::chain;
use crate::metrics;

/// Longest time committed batches wait for their files while a backlog lasts.
const MAX_HOLD: Duration = Duration::from_secs(5);

/// A committed batch: its messages, and which of them are dead letters.
struct Committed {
    messages: Vec<Message>,
    poison: BTreeSet<usize>,
}

/// Batches committed whose files are not written yet: their messages stay
/// unacknowledged until the files of all of them are written once.
#[derive(Default)]
pub(super) struct Unflushed {
    batches: Vec<Committed>,
    messages: usize,
    pages: BTreeSet<PageId>,
    conversations: BTreeSet<(PageId, Psid)>,
    since: Option<Instant>,
}

impl Unflushed {
    pub fn add(&mut self, messages: Vec<Message>, outcome: Outcome) {
        self.since.get_or_insert_with(Instant::now);
        self.messages += messages.len();
        self.pages.extend(outcome.pages);
        self.conversations.extend(outcome.conversations);
        self.batches.push(Committed {
            messages,
            poison: outcome.poison,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

impl Worker {
    /// Whether another full batch may be applied before writing the files: while a
    /// backlog lasts, files are written once per group of batches, keeping the
    /// unacknowledged messages under half of `max_ack_pending` and well within the ack wait.
    pub(super) fn may_hold(&self, unflushed: &Unflushed) -> bool {
        let s = &self.settings;
        let max_pending = s.max_ack_pending.max(s.batch_size as i64) as usize;
        let hold_for = (s.ack_wait / 4).min(MAX_HOLD);
        unflushed.messages + s.batch_size <= max_pending / 2
            && unflushed.since.is_none_or(|t| t.elapsed() < hold_for)
    }

    /// Writes the files of every committed batch in hand, then acknowledges them
    /// (dead letters are terminated). When the files cannot be written, the
    /// messages are handed back: their redelivery is skipped as duplicates and rewrites the files.
    pub(super) async fn flush(&self, unflushed: &mut Unflushed) {
        if unflushed.is_empty() {
            return;
        }
        let u = std::mem::take(unflushed);
        let batches = u.batches.iter().flat_map(|c| &c.messages);
        let _traced = crate::trace::spans(batches, || tracing::info_span!("write_files"));
        let started = Instant::now();
        let written = match self.write_files(&u).await {
            Ok(n) => n,
            Err(e) => {
                metrics::retried();
                let reason = chain(&e);
                self.stall.failed(&reason);
                tracing::debug!(error = %reason, "files not written; batches handed back for redelivery");
                for batch in &u.batches {
                    nak_all(&batch.messages, backoff::FIRST).await;
                }
                return;
            }
        };
        let files_took = started.elapsed();
        metrics::files(files_took, written);
        self.stall.progressed();
        acknowledge(&u.batches).await;
        tracing::debug!(
            batches = u.batches.len(),
            messages = u.messages,
            files_ms = files_took.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "files written and batches acknowledged"
        );
    }

    /// Writes the files of the batches in hand, within the batch deadline (a
    /// connection that misses it is discarded, as for a batch).
    async fn write_files(&self, u: &Unflushed) -> Result<usize, TurnError> {
        let mut conn = self.applier.pool().get().await?;
        let deadline = self.applier.deadline();
        let work = self.files.write(&mut conn, &u.pages, &u.conversations);
        match tokio::time::timeout(deadline, work).await {
            Ok(written) => Ok(written?),
            Err(_) => {
                metrics::deadline_exceeded("files");
                pagesync_runtime::connect::discard(conn);
                Err(TurnError::FilesDeadline(deadline))
            }
        }
    }
}

/// Acknowledges the messages of committed batches whose files are written
/// (terminating the dead letters), then reports the consumer's lag.
async fn acknowledge(batches: &[Committed]) {
    let acks = batches.iter().flat_map(|batch| {
        batch.messages.iter().enumerate().map(move |(i, m)| {
            let kind = if batch.poison.contains(&i) {
                AckKind::Term
            } else {
                AckKind::Ack
            };
            async move { m.ack_with(kind).await }
        })
    });
    for result in futures::future::join_all(acks).await {
        if let Err(e) = result {
            // Redelivery of a committed event is skipped as a duplicate.
            tracing::warn!(error = %e, "acknowledgement not sent");
        }
    }
    if let Some(pending) = batches
        .last()
        .and_then(|b| b.messages.last())
        .and_then(|m| m.info().ok())
        .map(|i| i.pending)
    {
        metrics::lag(pending);
    }
}

/// Hands messages back for redelivery after `delay`.
pub(super) async fn nak_all(messages: &[Message], delay: Duration) {
    let naks = messages
        .iter()
        .map(|m| m.ack_with(AckKind::Nak(Some(delay))));
    for r in futures::future::join_all(naks).await {
        if let Err(e) = r {
            tracing::debug!(error = %e, "nak not sent; redelivery follows the ack wait");
        }
    }
}
