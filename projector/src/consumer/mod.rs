//! The durable pull consumer: fetch a batch, apply it in one transaction, write
//! the files, then acknowledge. Nothing is acknowledged before it is committed and
//! its files are written; a failed batch is handed back with a delay.

mod fetch;
mod flush;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use tokio_util::sync::CancellationToken;

use crate::backoff::{self, Delays};
use crate::batch::{Applier, ApplyError, Outcome, Prepared};
use crate::error::{RunError, chain};
use crate::files::Files;
use crate::metrics;
use crate::stall::Stall;
pub(crate) use fetch::incoming;
use fetch::{Fetched, Wait};
use flush::{Unflushed, nak_all};

/// Settings of the consumer loop.
#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    pub name: String,
    pub filter_subject: String,
    pub batch_size: usize,
    pub fetch_expiry: Duration,
    pub max_ack_pending: i64,
    pub ack_wait: Duration,
    pub owner_check_interval: Duration,
}

impl ConsumerSettings {
    /// The durable consumer's configuration; `start` is where a new consumer begins.
    pub fn config(&self, start: DeliverPolicy) -> pull::Config {
        pull::Config {
            durable_name: Some(self.name.clone()),
            description: Some("pagesync projector".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_ack_pending: self.max_ack_pending.max(self.batch_size as i64),
            deliver_policy: start,
            filter_subject: self.filter_subject.clone(),
            ..Default::default()
        }
    }
}

/// Gets the durable consumer, creating it at the start of the stream when missing.
pub async fn durable(
    stream: &jetstream::stream::Stream,
    settings: &ConsumerSettings,
) -> Result<PullConsumer, RunError> {
    stream
        .get_or_create_consumer(&settings.name, settings.config(DeliverPolicy::All))
        .await
        .map_err(RunError::nats("getting or creating the durable consumer"))
}

/// Why a turn of the loop did not get its batch applied and acknowledged; each is
/// retried (the batch handed back), and only the stall log and `/ready` show it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TurnError {
    #[error("fetching from JetStream")]
    Fetch(#[source] async_nats::Error),
    #[error("the fetch did not end in time")]
    FetchTimeout,
    #[error("a delivery without its metadata (no stream sequence)")]
    NoMetadata(#[source] async_nats::Error),
    #[error("preparing the batch")]
    Prepare(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("no database connection for the files")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("writing the files")]
    Files(#[from] crate::files::FileError),
    #[error(
        "the batch deadline ({0:?}) passed before the files were written; their connection was discarded"
    )]
    FilesDeadline(Duration),
}

/// What a drain did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    pub batches: u64,
    pub messages: u64,
    pub dead_letters: u64,
}

/// The consumer loop's parts.
pub struct Worker {
    pub consumer: PullConsumer,
    pub applier: Applier,
    pub files: Files,
    pub settings: ConsumerSettings,
    pub stream_name: String,
    /// Failures to apply or flush, for the log and `/ready`.
    pub stall: Arc<Stall>,
}

/// When the consumer loop returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Until {
    /// When `shutdown` is cancelled (`projector`).
    Stopped,
    /// Also once nothing is pending or awaiting acknowledgement (`projector drain`).
    Drained,
}

/// Whether the loop goes on after a turn.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Turn {
    Continue,
    Done,
}

/// The loop's state between turns.
#[derive(Default)]
struct Progress {
    report: DrainReport,
    /// Waits after consecutive failures.
    delays: Delays,
    unflushed: Unflushed,
    /// The next batch, fetched and prepared while the previous one was being applied.
    prefetched: Option<Result<Fetched, TurnError>>,
    /// The last batch left nothing pending: a drain checks before waiting on a fetch.
    maybe_done: bool,
}

impl Worker {
    /// Follows the stream until `shutdown` (or, with [`Until::Drained`], until
    /// nothing is pending or awaiting acknowledgement).
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        until: Until,
    ) -> Result<DrainReport, RunError> {
        let mut p = Progress::default();
        let mut last_owner_check = Instant::now();
        while !shutdown.is_cancelled() {
            if last_owner_check.elapsed() >= self.settings.owner_check_interval {
                last_owner_check = Instant::now();
                self.check_owners().await;
            }
            if until == Until::Drained
                && p.maybe_done
                && p.unflushed.is_empty()
                && p.prefetched.is_none()
            {
                if self.settled().await {
                    break;
                }
                p.maybe_done = false;
            }
            if self.turn(&mut p, &shutdown, until).await == Turn::Done {
                break;
            }
        }
        if let Some(Ok(fetched)) = p.prefetched.take() {
            // Stopped with a batch fetched but not applied: hand it back at once.
            nak_all(&fetched.messages, Duration::ZERO).await;
        }
        self.flush(&mut p.unflushed).await;
        Ok(p.report)
    }

    /// One turn: take the next batch (prefetched, or fetched now) and apply it.
    async fn turn(&self, p: &mut Progress, shutdown: &CancellationToken, until: Until) -> Turn {
        let fetch_started = Instant::now();
        // With files still to write, only take what is already there.
        let wait = if p.unflushed.is_empty() {
            Wait::ForNext
        } else {
            Wait::No
        };
        let fetched = match p.prefetched.take() {
            Some(f) => f,
            None => self.next_batch(shutdown, until, wait).await,
        };
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "fetch failed; retrying");
                self.flush(&mut p.unflushed).await;
                backoff::pause(p.delays.failed(), shutdown).await;
                return Turn::Continue;
            }
        };
        if fetched.messages.is_empty() {
            return self.nothing_fetched(p, until).await;
        }
        tracing::debug!(
            messages = fetched.messages.len(),
            fetch_ms = fetch_started.elapsed().as_millis() as u64,
            "fetched"
        );
        self.apply_fetched(p, fetched, shutdown, until).await;
        Turn::Continue
    }

    /// Nothing came: write what is held, or end a drain that is caught up.
    async fn nothing_fetched(&self, p: &mut Progress, until: Until) -> Turn {
        if !p.unflushed.is_empty() {
            self.flush(&mut p.unflushed).await;
            return Turn::Continue;
        }
        if until == Until::Drained && self.caught_up().await {
            return Turn::Done;
        }
        Turn::Continue
    }

    /// Applies a batch (fetching the next meanwhile in a backlog), then writes the
    /// files unless the backlog lets them wait; a failed batch is handed back.
    async fn apply_fetched(
        &self,
        p: &mut Progress,
        fetched: Fetched,
        shutdown: &CancellationToken,
        until: Until,
    ) {
        let Fetched { messages, prepared } = fetched;
        // A backlog: this batch was full and more messages wait behind it.
        let pending = messages
            .last()
            .and_then(|m| m.info().ok())
            .map(|i| i.pending);
        p.maybe_done = pending == Some(0);
        let backlog = messages.len() >= self.settings.batch_size && pending > Some(0);
        let traced = crate::trace::spans(&messages, || tracing::info_span!("apply"));
        // In a backlog the next batch is fetched while this one is applied.
        let (applied, next) = futures::future::join(self.apply(&prepared, messages.len()), async {
            if backlog && self.may_hold(&p.unflushed) {
                Some(self.next_batch(shutdown, until, Wait::No).await)
            } else {
                None
            }
        })
        .await;
        drop(traced);
        p.prefetched = next;
        match applied {
            Ok(outcome) => {
                p.delays.succeeded();
                p.report.batches += 1;
                p.report.messages += messages.len() as u64;
                p.report.dead_letters += outcome.poison.len() as u64;
                p.unflushed.add(messages, outcome);
                if !(backlog && self.may_hold(&p.unflushed)) {
                    self.flush(&mut p.unflushed).await;
                }
            }
            Err(e) => {
                self.flush(&mut p.unflushed).await;
                let delay = p.delays.failed();
                metrics::retried();
                let reason = chain(&e);
                self.stall.failed(&reason);
                let cause = if e.is_data() { "data" } else { "database" };
                tracing::debug!(error = %reason, cause, attempt = p.delays.failures(), "batch not applied; handed back for redelivery");
                nak_all(&messages, delay).await;
                backoff::pause(delay, shutdown).await;
            }
        }
    }

    /// Applies one batch in one transaction (files and acknowledgements come with the flush).
    async fn apply(&self, prepared: &Prepared, messages: usize) -> Result<Outcome, ApplyError> {
        let started = Instant::now();
        let outcome = self.applier.apply_prepared(prepared).await?;
        tracing::debug!(
            messages,
            apply_ms = started.elapsed().as_millis() as u64,
            "batch applied"
        );
        metrics::record(&outcome, &self.stream_name, started.elapsed());
        Ok(outcome)
    }

    async fn check_owners(&self) {
        let result = async {
            let mut conn = self.applier.pool().get().await?;
            Ok::<_, TurnError>(self.files.relocate_moved(&mut conn).await?)
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %chain(&e), "owner check failed; will retry");
        }
    }
}
