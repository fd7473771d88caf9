//! The JetStream stream every service shares, and publishing events to it.

use std::fmt;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::Event;

/// Stream names may not contain whitespace, `.`, `*`, `>` or path separators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamName(String);

/// A subject prefix: one or more dot-separated tokens without wildcards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectPrefix(String);

#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("stream name must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    Stream,
    #[error("subject prefix must be dot-separated tokens of A-Z, a-z, 0-9, '_' or '-'")]
    Prefix,
}

impl std::str::FromStr for StreamName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        crate::ids::is_safe_token(s)
            .then(|| Self(s.to_owned()))
            .ok_or(NameError::Stream)
    }
}

impl std::str::FromStr for SubjectPrefix {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let ok = !s.is_empty() && s.split('.').all(crate::ids::is_safe_token);
        ok.then(|| Self(s.to_owned())).ok_or(NameError::Prefix)
    }
}

impl StreamName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl SubjectPrefix {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<prefix>.>`: every subject of the stream.
    pub fn wildcard(&self) -> String {
        format!("{}.>", self.0)
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for SubjectPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the stream must look like.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub name: StreamName,
    pub prefix: SubjectPrefix,
    /// JetStream drops a second publish with the same `Nats-Msg-Id` inside this window.
    pub duplicate_window: Duration,
}

impl StreamSpec {
    pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.0.clone(),
            subjects: vec![self.prefix.wildcard()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            // History is the replay source for `projector rebuild`: never drop it silently.
            discard: stream::DiscardPolicy::New,
            duplicate_window: self.duplicate_window,
            num_replicas: 1,
            ..Default::default()
        }
    }
}

/// The stream could not be looked up, read, created or updated; `name` is the stream's.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot look up JetStream stream {name}")]
    Get {
        name: String,
        #[source]
        source: jetstream::context::GetStreamError,
    },
    #[error("cannot read the configuration of JetStream stream {name}")]
    Info {
        name: String,
        #[source]
        source: stream::InfoError,
    },
    #[error("cannot create or update JetStream stream {name}")]
    Write {
        name: String,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
}

/// Creates the stream, or brings an existing one to `spec`'s subjects and window.
/// Safe when several services start at once.
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
) -> Result<stream::Stream, StreamError> {
    let name = || spec.name.0.clone();
    let write = |source| StreamError::Write {
        name: name(),
        source,
    };
    let wanted = spec.config();
    match js.get_stream(spec.name.as_str()).await {
        Ok(mut existing) => {
            let info = existing.info().await.map_err(|source| StreamError::Info {
                name: name(),
                source,
            })?;
            let current = &info.config;
            if current.subjects != wanted.subjects
                || current.duplicate_window != wanted.duplicate_window
            {
                let mut updated = current.clone();
                updated.subjects = wanted.subjects.clone();
                updated.duplicate_window = wanted.duplicate_window;
                js.update_stream(updated).await.map_err(write)?;
            }
            Ok(existing)
        }
        Err(e) if stream_missing(&e) => match js.create_stream(wanted).await {
            Ok(s) => Ok(s),
            // Another service created it between our lookup and our create.
            Err(create_err) => js
                .get_stream(spec.name.as_str())
                .await
                .map_err(|_| write(create_err)),
        },
        // NATS unreachable, a timeout, no JetStream: not a reason to create anything.
        Err(source) => Err(StreamError::Get {
            name: name(),
            source,
        }),
    }
}

fn stream_missing(e: &jetstream::context::GetStreamError) -> bool {
    use jetstream::ErrorCode;
    use jetstream::context::GetStreamErrorKind;
    matches!(e.kind(), GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// What JetStream said about a set of publishes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublishReport {
    pub stored: usize,
    /// Publishes JetStream recognised as duplicates of a message already in its window.
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// An event NATS will never take (its `max_payload` is a server setting):
    /// retrying cannot help, and nothing of the set was published.
    #[error("an event of {size} bytes is larger than NATS accepts ({max} bytes, its max_payload)")]
    TooLarge { size: usize, max: usize },
    #[error("publish to JetStream failed: {0}")]
    Nats(#[from] async_nats::jetstream::context::PublishError),
}

/// Room left in `max_payload` for the headers (`Nats-Msg-Id`, `traceparent`).
const HEADER_ROOM: usize = 1024;

/// Publishes events to the shared stream with their ids as `Nats-Msg-Id`.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    prefix: SubjectPrefix,
}

impl Publisher {
    pub fn new(js: jetstream::Context, prefix: SubjectPrefix) -> Self {
        Self { js, prefix }
    }

    pub fn prefix(&self) -> &SubjectPrefix {
        &self.prefix
    }

    /// Publishes every event, pipelined, and returns once JetStream acknowledged
    /// each one. `traceparent`, when given, is copied to every message.
    ///
    /// Acknowledgements are awaited by a separate task as they arrive, not after the
    /// last publish: async-nats bounds the unacknowledged publishes of a connection
    /// and frees a slot only when its ack future completes, so concurrent callers that
    /// each held their acks until done publishing could take every slot and wait on
    /// one another forever.
    pub async fn publish_all(
        &self,
        events: &[Event],
        traceparent: Option<&str>,
    ) -> Result<PublishReport, PublishError> {
        // Every envelope is checked against the server's limit before the first
        // publish, so a set with an event NATS refuses leaves nothing behind.
        let max = self.js.client().max_payload();
        let bodies: Vec<Vec<u8>> = events.iter().map(Event::to_json).collect();
        if let Some(size) = bodies
            .iter()
            .map(Vec::len)
            .find(|len| len + HEADER_ROOM > max)
        {
            return Err(PublishError::TooLarge { size, max });
        }
        let (acks, pending) = tokio::sync::mpsc::unbounded_channel::<PublishAckFuture>();
        let collector = tokio::spawn(collect_acks(pending));
        for (event, body) in events.iter().zip(bodies) {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, event.msg_id().as_str());
            if let Some(tp) = traceparent {
                headers.insert("traceparent", tp);
            }
            let ack = self
                .js
                .publish_with_headers(event.subject(&self.prefix), headers, body.into())
                .await?;
            if acks.send(ack).is_err() {
                break; // An acknowledgement failed: the collector reports it below.
            }
        }
        drop(acks);
        match collector.await {
            Ok(report) => report,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

impl Publisher {
    /// Publishes `payload` as it is to `subject` with `msg_id` as `Nats-Msg-Id` (an
    /// operator sending a dead letter round again); its stream sequence once stored.
    pub async fn publish_raw(
        &self,
        subject: &str,
        payload: Vec<u8>,
        msg_id: &str,
        traceparent: Option<&str>,
    ) -> Result<u64, PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        if let Some(tp) = traceparent {
            headers.insert("traceparent", tp);
        }
        let ack = self
            .js
            .publish_with_headers(subject.to_owned(), headers, payload.into())
            .await?
            .await?;
        Ok(ack.sequence)
    }
}

/// Awaits acknowledgements as they arrive until the sender is dropped and all are in.
async fn collect_acks(
    mut incoming: tokio::sync::mpsc::UnboundedReceiver<PublishAckFuture>,
) -> Result<PublishReport, PublishError> {
    let mut waiting = FuturesUnordered::new();
    let mut report = PublishReport::default();
    let mut open = true;
    loop {
        tokio::select! {
            next = incoming.recv(), if open => match next {
                Some(ack) => waiting.push(ack.into_future()),
                None => open = false,
            },
            Some(done) = waiting.next() => {
                if done?.duplicate {
                    report.duplicates += 1;
                } else {
                    report.stored += 1;
                }
            }
            else => return Ok(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefixes_are_validated() {
        assert!("FACEBOOK".parse::<StreamName>().is_ok());
        assert!("a.b".parse::<StreamName>().is_err());
        assert!("fb".parse::<SubjectPrefix>().is_ok());
        assert!("test.run_1".parse::<SubjectPrefix>().is_ok());
        for bad in ["", "fb.", ".fb", "fb.*", "fb.>", "f b"] {
            assert!(bad.parse::<SubjectPrefix>().is_err(), "{bad:?}");
        }
        assert_eq!("fb".parse::<SubjectPrefix>().unwrap().wildcard(), "fb.>");
    }
}
