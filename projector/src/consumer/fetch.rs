//! Fetching the next batch: whatever is there, or else the first message to arrive.

use std::time::Duration;

use async_nats::jetstream::Message;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{Until, Worker};
use crate::batch::{self, Incoming, Prepared};

/// How often, and how many times, a drain with nothing pending asks whether its
/// acknowledgements were processed before falling back to a fetch.
const SETTLE_INTERVAL: Duration = Duration::from_millis(10);
const SETTLE_POLLS: u32 = 20;

/// Whether a fetch that finds nothing waits for the next message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Wait {
    /// Up to the fetch expiry (nothing else to do meanwhile).
    ForNext,
    /// Not at all: files are still to be written.
    No,
}

/// A fetched batch, parsed and decoded.
pub(super) struct Fetched {
    pub messages: Vec<Message>,
    pub prepared: Prepared,
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

impl Worker {
    /// Whatever is available now, or else the first message to arrive within the expiry.
    pub(super) async fn next_batch(
        &self,
        shutdown: &CancellationToken,
        until: Until,
        wait: Wait,
    ) -> Result<Fetched, String> {
        let messages = self.fetch(shutdown, until, wait).await?;
        Fetched::prepare(messages).await
    }

    /// The messages of the next batch, in stream order.
    async fn fetch(
        &self,
        shutdown: &CancellationToken,
        until: Until,
        wait: Wait,
    ) -> Result<Vec<Message>, String> {
        let mut out = self.fetch_available().await?;
        // A drain that finds nothing pending ends without waiting for the expiry.
        if out.is_empty()
            && (wait == Wait::No || until == Until::Drained && self.caught_up().await)
        {
            return Ok(out);
        }
        if out.is_empty() {
            out = self.fetch_first(shutdown, until).await?;
        }
        out.sort_by_key(|m| m.info().map(|i| i.stream_sequence).unwrap_or(0));
        Ok(out)
    }

    /// Up to a batch of what is deliverable now.
    async fn fetch_available(&self) -> Result<Vec<Message>, String> {
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
        tokio::time::timeout(limit, collect(fetch))
            .await
            .map_err(|_| "fetch did not end in time".to_owned())?
    }

    /// The first message to arrive within the expiry (empty on shutdown).
    async fn fetch_first(
        &self,
        shutdown: &CancellationToken,
        until: Until,
    ) -> Result<Vec<Message>, String> {
        let expiry = match until {
            // A drain only waits for acknowledgements still in flight to settle.
            Until::Drained => self.settings.fetch_expiry.min(Duration::from_millis(50)),
            Until::Stopped => self.settings.fetch_expiry,
        };
        let wait = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(expiry)
            .messages();
        let batch = tokio::select! {
            b = wait => b.map_err(|e| e.to_string())?,
            _ = shutdown.cancelled() => return Ok(Vec::new()),
        };
        tokio::select! {
            m = collect(batch) => m,
            _ = shutdown.cancelled() => Ok(Vec::new()),
        }
    }

    /// Whether a drain is done once the acknowledgements just sent are processed:
    /// while only they are outstanding, asks again for a short while instead of
    /// waiting out a fetch's expiry.
    pub(super) async fn settled(&self) -> bool {
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

    pub(super) async fn caught_up(&self) -> bool {
        let mut consumer = self.consumer.clone();
        match consumer.info().await {
            Ok(info) => info.num_pending == 0 && info.num_ack_pending == 0,
            Err(e) => {
                tracing::warn!(error = %e, "consumer info unavailable");
                false
            }
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
