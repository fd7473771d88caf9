//! The durable pull consumer: fetch a batch, apply it in one transaction, write
//! the files, then acknowledge. Nothing is acknowledged before it is committed and
//! its files are written; a failed batch is handed back with a delay.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind, Message};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::batch::{Applier, Incoming, Outcome};
use crate::files::Files;
use crate::metrics;

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
        while !shutdown.is_cancelled() {
            if last_owner_check.elapsed() >= self.settings.owner_check_interval {
                last_owner_check = Instant::now();
                self.check_owners().await;
            }
            let fetch_started = Instant::now();
            let messages = match self.next_batch(&shutdown, drain).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "fetch failed; retrying");
                    failures += 1;
                    sleep_or_cancel(backoff(failures), &shutdown).await;
                    continue;
                }
            };
            if messages.is_empty() {
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
            match self.process(&messages).await {
                Ok(outcome) => {
                    failures = 0;
                    report.batches += 1;
                    report.messages += messages.len() as u64;
                    report.dead_letters += outcome.poison.len() as u64;
                }
                Err(e) => {
                    failures += 1;
                    metrics::retried();
                    tracing::warn!(error = %e, attempt = failures, "batch not applied; handed back for redelivery");
                    let delay = backoff(failures);
                    nak_all(&messages, delay).await;
                    sleep_or_cancel(delay, &shutdown).await;
                }
            }
        }
        Ok(report)
    }

    /// One batch: apply, write files, acknowledge (terminate dead letters).
    async fn process(&self, messages: &[Message]) -> Result<Outcome, String> {
        let started = Instant::now();
        let incoming: Vec<Incoming> = messages.iter().map(incoming).collect();
        let outcome = self
            .applier
            .apply(&incoming)
            .await
            .map_err(|e| e.to_string())?;
        let conn = self.applier.pool().get().await.map_err(|e| e.to_string())?;
        let applied = started.elapsed();
        self.files
            .write(&conn, &outcome.pages, &outcome.conversations)
            .await
            .map_err(|e| e.to_string())?;
        let written = started.elapsed();
        let acks = messages.iter().enumerate().map(|(i, m)| {
            let kind = if outcome.poison.contains(&i) {
                AckKind::Term
            } else {
                AckKind::Ack
            };
            async move { m.ack_with(kind).await }
        });
        for result in futures::future::join_all(acks).await {
            if let Err(e) = result {
                // Redelivery of a committed event is skipped as a duplicate.
                tracing::warn!(error = %e, "acknowledgement not sent");
            }
        }
        if let Some(pending) = messages
            .last()
            .and_then(|m| m.info().ok())
            .map(|i| i.pending)
        {
            metrics::lag(pending);
        }
        tracing::debug!(
            messages = messages.len(),
            apply_ms = applied.as_millis() as u64,
            files_ms = (written - applied).as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "batch done"
        );
        metrics::record(&outcome, &self.stream_name, started.elapsed());
        Ok(outcome)
    }

    /// Whatever is available now, or else the first message to arrive within the expiry.
    async fn next_batch(
        &self,
        shutdown: &CancellationToken,
        drain: bool,
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
        if out.is_empty() && drain && self.caught_up().await {
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
            let conn = self.applier.pool().get().await.map_err(|e| e.to_string())?;
            self.files
                .relocate_moved(&conn)
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
