use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use pagesync_runtime::config::NatsConfig;
use pagesync_schema::{Event, StreamName, SubjectPrefix};

/// A stream and subject prefix of this test's own on a shared NATS server.
/// The stream is deleted when dropped.
pub struct TestNats {
    pub url: String,
    pub stream: StreamName,
    pub prefix: SubjectPrefix,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
}

/// A stream that is never deleted, so the account always has one.
///
/// nats-server 2.9 removes the account's `streams` directory when its last stream
/// is deleted; a stream created at that moment by a test running beside fails with
/// "error creating store for stream" (10049). With this stream in place the
/// directory stays. It holds no messages (nothing publishes to its subject).
const ANCHOR_STREAM: &str = "PAGESYNC_TESTKIT_ANCHOR";

async fn keep_stream_directory(js: &jetstream::Context) {
    js.get_or_create_stream(jetstream::stream::Config {
        name: ANCHOR_STREAM.into(),
        subjects: vec!["pagesync-testkit-anchor".into()],
        max_messages: 1,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create the testkit's anchor stream: {e}"));
}

impl TestNats {
    /// On the server at `NATS_URL`.
    pub async fn new() -> Self {
        Self::on(&crate::nats_url()).await
    }

    /// On a given server (a [`crate::PrivateNats`], say).
    pub async fn on(url: &str) -> Self {
        let suffix = crate::unique_suffix();
        let client = async_nats::connect(url)
            .await
            .unwrap_or_else(|e| panic!("tests need NATS with JetStream at {url}: {e}"));
        let js = jetstream::new(client.clone());
        keep_stream_directory(&js).await;
        Self {
            url: url.to_owned(),
            stream: format!("T_{suffix}").parse().expect("valid stream name"),
            prefix: format!("t{suffix}").parse().expect("valid prefix"),
            client,
            js,
        }
    }

    /// The configuration a service under test gets.
    pub fn config(&self) -> NatsConfig {
        NatsConfig {
            nats_url: self.url.clone(),
            nats_stream: self.stream.clone(),
            nats_subject_prefix: self.prefix.clone(),
            nats_duplicate_window: Duration::from_secs(120),
        }
    }

    /// Environment variables for a service binary under test.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("NATS_URL".into(), self.url.clone()),
            ("NATS_STREAM".into(), self.stream.to_string()),
            ("NATS_SUBJECT_PREFIX".into(), self.prefix.to_string()),
        ]
    }

    /// Creates the stream as services do.
    pub async fn ensure_stream(&self) -> jetstream::stream::Stream {
        pagesync_schema::ensure_stream(&self.js, &self.config().stream_spec())
            .await
            .expect("create test stream")
    }

    /// Number of messages in the stream (0 when it does not exist yet).
    pub async fn message_count(&self) -> u64 {
        match self.js.get_stream(self.stream.as_str()).await {
            Ok(mut s) => s.info().await.expect("stream info").state.messages,
            Err(_) => 0,
        }
    }

    /// Every message in the stream, in order, with its subject and headers.
    pub async fn messages(&self) -> Vec<StoredMessage> {
        let count = self.message_count().await;
        if count == 0 {
            return Vec::new();
        }
        let stream = self
            .js
            .get_stream(self.stream.as_str())
            .await
            .expect("stream");
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
            .await
            .expect("ordered consumer");
        let mut messages = consumer.messages().await.expect("messages");
        let mut out = Vec::new();
        while (out.len() as u64) < count {
            let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("stream read timed out")
                .expect("stream ended")
                .expect("message");
            out.push(StoredMessage {
                subject: msg.subject.to_string(),
                msg_id: msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                    .map(|v| v.as_str().to_owned()),
                traceparent: msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("traceparent"))
                    .map(|v| v.as_str().to_owned()),
                payload: msg.payload.to_vec(),
            });
        }
        out
    }

    /// Every event in the stream, parsed.
    pub async fn events(&self) -> Vec<Event> {
        self.messages()
            .await
            .iter()
            .map(|m| Event::from_json(&m.payload).expect("stream holds valid envelopes"))
            .collect()
    }
}

/// A message as read back from the stream.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub subject: String,
    pub msg_id: Option<String>,
    pub traceparent: Option<String>,
    pub payload: Vec<u8>,
}

impl StoredMessage {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("JSON payload")
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.stream.to_string());
        crate::cleanup::run(format!("stream {stream}"), async move {
            let client = async_nats::connect(&url).await.map_err(|e| e.to_string())?;
            match jetstream::new(client).delete_stream(&stream).await {
                Ok(_) => Ok(()),
                // A test that never created its stream has nothing to delete.
                Err(e) if e.to_string().contains("stream not found") => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        });
    }
}
