//! Applying a batch of stream messages to Postgres in one transaction.
//!
//! Order of work: parse and decode every message (bad ones become dead letters),
//! keep one copy per event id (the best-ranked, then the first in the stream), skip
//! ids already applied by an equal or better copy, upsert the rest with statements
//! that converge in any order, recompute the touched conversations' summaries,
//! record applied ids and dead letters, commit.

mod apply;
mod dead_letters;
mod first_seen;
mod inbox;
mod prepare;
mod rows;
mod stored;
mod summary;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use deadpool_postgres::Pool;
use pagesync_schema::{EventType, PageId, Psid};

pub use inbox::CHANGES_CHANNEL;
pub use prepare::{Prepared, prepare};

/// One message as fetched from the stream.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
}

/// What became of a batch once committed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Indices (into the batch) of messages recorded as dead letters: terminate them.
    pub poison: BTreeSet<usize>,
    /// Events applied (new, or a better copy replacing a weaker one), by type.
    pub applied: BTreeMap<EventType, u64>,
    /// Copies skipped because an equal or better copy was already applied.
    pub duplicates: u64,
    /// Dead letters recorded for the first time.
    pub new_dead_letters: u64,
    /// Pages and conversations whose files must be rewritten.
    pub pages: BTreeSet<PageId>,
    pub conversations: BTreeSet<(PageId, Psid)>,
    /// Messages seen for the first time, by (platform, origin): webhook coverage.
    pub first_seen: first_seen::Counts,
}

/// Why a batch was not committed. Every variant is retried: nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error{}", sqlstate(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error(
        "the batch deadline ({0:?}) passed before Postgres committed; its connection was discarded"
    )]
    Deadline(std::time::Duration),
}

impl ApplyError {
    /// A failure caused by the data of some event (rather than the database being
    /// away): the batch is retried event by event to find the culprit.
    pub fn is_data(&self) -> bool {
        match self {
            Self::Db(e) => is_data_error(e),
            Self::Pool(_) | Self::Deadline(_) => false,
        }
    }
}

/// The SQLSTATE of a server's complaint, for the message (its text is the source).
fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| format!(" (SQLSTATE {})", c.code()))
        .unwrap_or_default()
}

fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| matches!(&c.code()[..2], "22" | "23" | "54"))
}

/// Applies batches to Postgres.
#[derive(Clone)]
pub struct Applier {
    pool: Pool,
    /// Longest one batch's transaction may take.
    deadline: std::time::Duration,
    mode: Mode,
}

/// Whether batches are news or history.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Following the stream: each message logs its conversation at INFO (contract §4).
    Live,
    /// A rebuild replays history: its per-message conversation logs go to DEBUG so a
    /// replay of millions of events does not flood the INFO log.
    Replay,
}

impl Applier {
    pub fn new(pool: Pool, deadline: std::time::Duration) -> Self {
        Self {
            pool,
            deadline,
            mode: Mode::Live,
        }
    }

    /// The same applier for a rebuild.
    pub fn replaying(&self) -> Self {
        Self {
            mode: Mode::Replay,
            ..self.clone()
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn deadline(&self) -> std::time::Duration {
        self.deadline
    }

    /// Applies `batch` in one transaction and commits it.
    pub async fn apply(&self, batch: &[Incoming]) -> Result<Outcome, ApplyError> {
        self.apply_prepared(&prepare(batch)).await
    }

    /// Applies a prepared batch in one transaction and commits it, within the
    /// deadline. A connection that misses it may be stuck on a network that went
    /// silent: it is discarded, never reused.
    pub async fn apply_prepared(&self, prepared: &Prepared) -> Result<Outcome, ApplyError> {
        let mut conn = self.pool.get().await?;
        let work = apply::apply_or_isolate(&mut conn, prepared, self.mode);
        match tokio::time::timeout(self.deadline, work).await {
            Ok(result) => result,
            Err(_) => {
                crate::metrics::deadline_exceeded("apply");
                pagesync_runtime::connect::discard(conn);
                Err(ApplyError::Deadline(self.deadline))
            }
        }
    }
}
