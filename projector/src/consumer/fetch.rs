//! Fetching the next batch: whatever is there, or else the first message to arrive.

use std::time::Duration;

use async_nats::jetstream::Message;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{TurnError, Until, Worker};
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
    async fn prepare(messages: Vec<Message>) -> Result<Self, TurnError> {
        let mut pairs = messages
            .into_iter()
            .map(|m| Ok((incoming(&m)?, m)))
            .collect::<Result<Vec<(Incoming, Message)>, async_nats::Error>>()
            .map_err(TurnError::NoMetadata)?;
        // In stream order (a fetch may return them otherwise).
        pairs.sort_by_key(|(i, _)| i.seq);
        let (incoming, messages): (Vec<Incoming>, Vec<Message>) = pairs.into_iter().unzip();
        let prepared = tokio::task::spawn_blocking(move || batch::prepare(&incoming)).await?;
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
    ) -> Result<Fetched, TurnError> {
        let messages = self.fetch(shutdown, until, wait).await?;
        Fetched::prepare(messages).await
    }

    /// The messages of the next batch.
    async fn fetch(
        &self,
        shutdown: &CancellationToken,
        until: Until,
        wait: Wait,
    ) -> Result<Vec<Message>, TurnError> {
        let mut out = self.fetch_available().await?;
        // A drain that finds nothing pending ends without waiting for the expiry.
        if out.is_empty() && (wait == Wait::No || until == Until::Drained && self.caught_up().await)
        {
            return Ok(out);
        }
        if out.is_empty() {
            out = self.fetch_first(shutdown, until).await?;
        }
        Ok(out)
    }

    /// Up to a batch of what is deliverable now.
    async fn fetch_available(&self) -> Result<Vec<Message>, TurnError> {
        // `expires` bounds a no-wait fetch too: without it a request the server
        // leaves open (it does, when fewer messages than asked are deliverable) waits forever.
        let fetch = self
            .consumer
            .fetch()
            .max_messages(self.settings.batch_size)
            .expires(self.settings.fetch_expiry)
            .messages()
            .await
            .map_err(|e| TurnError::Fetch(e.into()))?;
        let limit = self.settings.fetch_expiry * 2 + Duration::from_secs(5);
        tokio::time::timeout(limit, collect(fetch))
            .await
            .map_err(|_| TurnError::FetchTimeout)?
    }

    /// The first message to arrive within the expiry (empty on shutdown).
    async fn fetch_first(
        &self,
        shutdown: &CancellationToken,
        until: Until,
    ) -> Result<Vec<Message>, TurnError> {
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
            b = wait => b.map_err(|e| TurnError::Fetch(e.into()))?,
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
) -> Result<Vec<Message>, TurnError> {
    let mut out = Vec::new();
    while let Some(m) = batch.next().await {
        match m {
            Ok(m) => out.push(m),
            Err(e) if out.is_empty() => return Err(TurnError::Fetch(e)),
            Err(e) => {
                tracing::debug!(error = %e, "fetch ended early");
                break;
            }
        }
    }
    Ok(out)
}

/// A fetched message as the applier takes it. Its stream sequence keys its dead
/// letter, so a message whose metadata does not parse is an error, not sequence 0.
pub(crate) fn incoming(m: &Message) -> Result<Incoming, async_nats::Error> {
    Ok(Incoming {
        seq: m.info()?.stream_sequence,
        subject: m.subject.to_string(),
        payload: m.payload.clone(),
    })
}
