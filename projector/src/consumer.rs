//! The durable pull consumer: fetch a batch, apply it in one transaction, write
//! the files, then acknowledge. Nothing is acknowledged before it is committed and
//! its files are written; a failed batch is handed back with a delay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind, Message};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use std::collections::BTreeSet;

use pagesync_schema::{PageId, Psid};

use crate::batch::{self, Applier, Incoming, Outcome, Prepared};
use crate::files::Files;
use crate::metrics;
use crate::stall::Stall;

/// Longest time committed batches wait for their files while a backlog lasts.
const MAX_HOLD: Duration = Duration::from_secs(5);

/// How often, and how many times, a drain with nothing pending asks whether its
/// acknowledgements were processed before falling back to a fetch.
const SETTLE_INTERVAL: Duration = Duration::from_millis(10);
const SETTLE_POLLS: u32 = 20;

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
        .map_err(|e| RunError::Consumer(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("JetStream consumer: {0}")]
    Consumer(String),
    #[error("database: {0}")]
    Db(String),
    #[error("files: {0}")]
    Files(#[from] crate::files::FileError),
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

/// A fetched batch, parsed and decoded.
struct Fetched {
    messages: Vec<Message>,
    prepared: Prepared,
}

impl Fetched {
    /// Parses the batch on a blocking thread, so it overlaps whatever else is running.
    async fn prepare(messages: Vec<Message>) -> Result<Self, String> {
        let incoming: Vec<Incoming> = messages.iter().map(incoming).collect();
        let prepared = tokio::task::spawn_blocking(move || batch::prepare(&incoming))
            .await
            .map_err(|e| format!("batch preparation failed: {e}"))?;
        Ok(Self { messages, prepared })
    }
}

/// Batches committed whose files are not written yet: their messages stay
/// unacknowledged until the files of all of them are written once.
#[derive(Default)]
struct Unflushed {
    batches: Vec<(Vec<Message>, BTreeSet<usize>)>,
    messages: usize,
    pages: BTreeSet<PageId>,
    conversations: BTreeSet<(PageId, Psid)>,
    since: Option<Instant>,
}

impl Unflushed {
    fn add(&mut self, messages: Vec<Message>, outcome: Outcome) {
        self.since.get_or_insert_with(Instant::now);
        self.messages += messages.len();
        self.pages.extend(outcome.pages);
        self.conversations.extend(outcome.conversations);
        self.batches.push((messages, outcome.poison));
    }

    fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

impl Worker {
    /// Follows the stream until `shutdown`; with `drain`, returns once nothing is
    /// pending or awaiting acknowledgement.
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        drain: bool,
    ) -> Result<DrainReport, RunError> {
        let mut report = DrainReport::default();
        let mut failures: u32 = 0;
        let mut last_owner_check = Instant::now();
        let mut unflushed = Unflushed::default();
        // The next batch, fetched and prepared while the previous one was being applied.
        let mut prefetched: Option<Result<Fetched, String>> = None;
        // The last batch left nothing pending: a drain checks before waiting on a fetch.
        let mut maybe_done = false;
        while !shutdown.is_cancelled() {
            if last_owner_check.elapsed() >= self.settings.owner_check_interval {
                last_owner_check = Instant::now();
                self.check_owners().await;
            }
            if drain && maybe_done && unflushed.is_empty() && prefetched.is_none() {
                if self.settled().await {
                    break;
                }
                maybe_done = false;
            }
            let fetch_started = Instant::now();
            // With files still to write, only take what is already there.
            let wait = unflushed.is_empty();
            let fetched = match prefetched.take() {
                Some(f) => f,
                None => self.next_batch(&shutdown, drain, wait).await,
            };
            let fetched = match fetched {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "fetch failed; retrying");
                    self.flush(&mut unflushed).await;
                    failures += 1;
                    sleep_or_cancel(backoff(failures), &shutdown).await;
                    continue;
                }
            };
            let Fetched { messages, prepared } = fetched;
            if messages.is_empty() {
                if !unflushed.is_empty() {
                    self.flush(&mut unflushed).await;
                    continue;
                }
                if drain && self.caught_up().await {
                    break;
                }
                continue;
            }
            tracing::debug!(
                messages = messages.len(),
                fetch_ms = fetch_started.elapsed().as_millis() as u64,
                "fetched"
            );
            // A backlog: this batch was full and more messages wait behind it.
            let pending = messages
                .last()
                .and_then(|m| m.info().ok())
                .map(|i| i.pending);
            maybe_done = pending == Some(0);
            let backlog = messages.len() >= self.settings.batch_size && pending > Some(0);
            let traced = crate::trace::spans(&messages, || tracing::info_span!("apply"));
            // In a backlog the next batch is fetched while this one is applied.
            let (applied, next) =
                futures::future::join(self.apply(&prepared, messages.len()), async {
                    if backlog && self.may_hold(&unflushed) {
                        Some(self.next_batch(&shutdown, drain, false).await)
                    } else {
                        None
                    }
                })
                .await;
            drop(traced);
            prefetched = next;
            match applied {
                Ok(outcome) => {
                    failures = 0;
                    report.batches += 1;
                    report.messages += messages.len() as u64;
                    report.dead_letters += outcome.poison.len() as u64;
                    unflushed.add(messages, outcome);
                    if !(backlog && self.may_hold(&unflushed)) {
                        self.flush(&mut unflushed).await;
                    }
                }
                Err(e) => {
                    self.flush(&mut unflushed).await;
                    failures += 1;
                    metrics::retried();
                    self.stall.failed(&e);
                    tracing::debug!(error = %e, attempt = failures, "batch not applied; handed back for redelivery");
                    let delay = backoff(failures);
                    nak_all(&messages, delay).await;
                    sleep_or_cancel(delay, &shutdown).await;
                }
            }
        }
        if let Some(Ok(fetched)) = prefetched {
            // Stopped with a batch fetched but not applied: hand it back at once.
            nak_all(&fetched.messages, Duration::ZERO).await;
        }
        self.flush(&mut unflushed).await;
        Ok(report)
    }

    /// Whether another full batch may be applied before writing the files: while a
    /// backlog lasts, files are written once per group of batches, keeping the
    /// unacknowledged messages under half of `max_ack_pending` and well within the ack wait.
    fn may_hold(&self, unflushed: &Unflushed) -> bool {
        let s = &self.settings;
        let max_pending = s.max_ack_pending.max(s.batch_size as i64) as usize;
        let hold_for = (s.ack_wait / 4).min(MAX_HOLD);
        unflushed.messages + s.batch_size <= max_pending / 2
            && unflushed.since.is_none_or(|t| t.elapsed() < hold_for)
    }

    /// Applies one batch in one transaction (files and acknowledgements come with the flush).
    async fn apply(&self, prepared: &Prepared, messages: usize) -> Result<Outcome, String> {
        let started = Instant::now();
        let outcome = self
            .applier
            .apply_prepared(prepared)
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(
            messages,
            apply_ms = started.elapsed().as_millis() as u64,
            "batch applied"
        );
        metrics::record(&outcome, &self.stream_name, started.elapsed());
        Ok(outcome)
    }

    /// Writes the files of every committed batch in hand, then acknowledges them
    /// (dead letters are terminated). When the files cannot be written, the
    /// messages are handed back: their redelivery is skipped as duplicates and rewrites the files.
    async fn flush(&self, unflushed: &mut Unflushed) {
        if unflushed.is_empty() {
            return;
        }
        let u = std::mem::take(unflushed);
        let batches = u.batches.iter().flat_map(|(messages, _)| messages);
        let _traced = crate::trace::spans(batches, || tracing::info_span!("write_files"));
        let started = Instant::now();
        let written = match self.write_files(&u).await {
            Ok(n) => n,
            Err(e) => {
                metrics::retried();
                self.stall.failed(&e);
                tracing::debug!(error = %e, "files not written; batches handed back for redelivery");
                for (messages, _) in &u.batches {
                    nak_all(messages, backoff(1)).await;
                }
                return;
            }
        };
        let files_took = started.elapsed();
        metrics::files(files_took, written);
        self.stall.progressed();
        let acks = u.batches.iter().flat_map(|(messages, poison)| {
            messages.iter().enumerate().map(move |(i, m)| {
                let kind = if poison.contains(&i) {
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
        if let Some(pending) = u
            .batches
            .last()
            .and_then(|(m, _)| m.last())
            .and_then(|m| m.info().ok())
            .map(|i| i.pending)
        {
            metrics::lag(pending);
        }
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
    async fn write_files(&self, u: &Unflushed) -> Result<usize, String> {
        let mut conn = self.applier.pool().get().await.map_err(|e| e.to_string())?;
        let deadline = self.applier.deadline();
        let work = self.files.write(&mut conn, &u.pages, &u.conversations);
        match tokio::time::timeout(deadline, work).await {
            Ok(written) => written.map_err(|e| e.to_string()),
            Err(_) => {
                metrics::deadline_exceeded("files");
                pagesync_runtime::connect::discard(conn);
                Err(format!(
                    "the batch deadline ({deadline:?}) passed before the files were written; \
                     their connection was discarded"
                ))
            }
        }
    }

    /// Whatever is available now, or else the first message to arrive within the expiry.
    async fn next_batch(
        &self,
        shutdown: &CancellationToken,
        drain: bool,
        wait: bool,
    ) -> Result<Fetched, String> {
        let messages = self.fetch(shutdown, drain, wait).await?;
        Fetched::prepare(messages).await
    }

    /// The messages of the next batch, in stream order.
    async fn fetch(
        &self,
        shutdown: &CancellationToken,
        drain: bool,
        wait: bool,
    ) -> Result<Vec<Message>, String> {
        // `expires` bounds a no-wait fetch too: without it a request the server
        // leaves open (it does, when fewer messages than asked are deliverable) waits forever.
        let fetch = self
            .consumer
            .fetch()
            .max_messages(self.settings.batch_size)
            .expires(self.settings.fetch_expiry)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let limit = self.settings.fetch_expiry * 2 + Duration::from_secs(5);
        let mut out = tokio::time::timeout(limit, collect(fetch))
            .await
            .map_err(|_| "fetch did not end in time".to_owned())??;
        // A drain that finds nothing pending ends without waiting for the expiry.
        if out.is_empty() && (!wait || drain && self.caught_up().await) {
            return Ok(out);
        }
        if out.is_empty() {
            let wait = self
                .consumer
                .batch()
                .max_messages(1)
                // A drain only waits for acknowledgements still in flight to settle.
                .expires(if drain {
                    self.settings.fetch_expiry.min(Duration::from_millis(50))
                } else {
                    self.settings.fetch_expiry
                })
                .messages();
            let batch = tokio::select! {
                b = wait => b.map_err(|e| e.to_string())?,
                _ = shutdown.cancelled() => return Ok(Vec::new()),
            };
            out = tokio::select! {
                m = collect(batch) => m?,
                _ = shutdown.cancelled() => return Ok(Vec::new()),
            };
        }
        out.sort_by_key(|m| m.info().map(|i| i.stream_sequence).unwrap_or(0));
        Ok(out)
    }

    /// Whether a drain is done once the acknowledgements just sent are processed:
    /// while only they are outstanding, asks again for a short while instead of
    /// waiting out a fetch's expiry.
    async fn settled(&self) -> bool {
        for _ in 0..SETTLE_POLLS {
            let mut consumer = self.consumer.clone();
            match consumer.info().await {
                Ok(info) if info.num_pending > 0 => return false,
                Ok(info) if info.num_ack_pending == 0 => return true,
                Ok(_) => tokio::time::sleep(SETTLE_INTERVAL).await,
                Err(e) => {
                    tracing::warn!(error = %e, "consumer info unavailable");
                    return false;
                }
            }
        }
        false
    }

    async fn caught_up(&self) -> bool {
        let mut consumer = self.consumer.clone();
        match consumer.info().await {
            Ok(info) => info.num_pending == 0 && info.num_ack_pending == 0,
            Err(e) => {
                tracing::warn!(error = %e, "consumer info unavailable");
                false
            }
        }
    }

    async fn check_owners(&self) {
        let result = async {
            let mut conn = self.applier.pool().get().await.map_err(|e| e.to_string())?;
            self.files
                .relocate_moved(&mut conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "owner check failed; will retry");
        }
    }
}

async fn collect(
    mut batch: impl futures::Stream<Item = Result<Message, async_nats::Error>> + Unpin,
) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    while let Some(m) = batch.next().await {
        match m {
            Ok(m) => out.push(m),
            Err(e) if out.is_empty() => return Err(e.to_string()),
            Err(e) => {
                tracing::debug!(error = %e, "fetch ended early");
                break;
            }
        }
    }
    Ok(out)
}

pub(crate) fn incoming(m: &Message) -> Incoming {
    Incoming {
        seq: m.info().map(|i| i.stream_sequence).unwrap_or(0),
        subject: m.subject.to_string(),
        payload: m.payload.clone(),
    }
}

async fn nak_all(messages: &[Message], delay: Duration) {
    let naks = messages
        .iter()
        .map(|m| m.ack_with(AckKind::Nak(Some(delay))));
    for r in futures::future::join_all(naks).await {
        if let Err(e) = r {
            tracing::debug!(error = %e, "nak not sent; redelivery follows the ack wait");
        }
    }
}

/// 250 ms doubling to at most 10 s.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    (Duration::from_millis(250) * 2u32.pow(exp)).min(Duration::from_secs(10))
}

pub(crate) async fn sleep_or_cancel(d: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(100), Duration::from_secs(10));
    }
}
