//! `ingest`: Facebook's webhook endpoint. It verifies the signature, splits a
//! delivery into events and publishes them to JetStream, answering 200 only
//! after every publish is acknowledged.

pub mod body;
pub mod config;
pub mod error;
pub mod metrics;
pub mod split;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::Request;
use axum::routing::get;
use pagesync_runtime::CancellationToken;
use pagesync_runtime::connect::{self, ConnectError};
use pagesync_runtime::ops::ReadyCheck;
use pagesync_schema::Publisher;
use tower_http::trace::TraceLayer;

use body::{BodyBudget, BodyLimits};
pub use config::Config;
use webhook::WebhookState;

/// The webhook paths; both behave identically.
pub const WEBHOOK_PATHS: [&str; 2] = ["/facebook/webhook", "/api/webhooks/facebook"];

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] config::InvalidConfig),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Bind(#[from] pagesync_runtime::BindError),
}

/// A built ingest service: connected to NATS, listening, not yet serving.
pub struct App {
    http: pagesync_runtime::HttpService,
}

impl App {
    /// Connects to NATS (creating the stream when missing) and binds the listener.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        config.validate()?;
        let nats = connect::nats(
            &config.nats,
            "pagesync-ingest",
            config.ingest_publish_timeout,
        )
        .await?;
        // The recorder must exist before WebhookState registers its metric handles.
        pagesync_runtime::ops::metrics_handle();
        let publisher = Publisher::new(nats.js.clone(), config.nats.nats_subject_prefix.clone());
        let state = Arc::new(WebhookState::new(
            &config.facebook_app_secret,
            &config.facebook_verify_token,
            publisher,
            config.ingest_publish_timeout,
            BodyLimits {
                max_bytes: config.ingest_max_body_bytes,
                timeout: config.ingest_body_timeout,
            },
            BodyBudget::new(config.ingest_body_budget_bytes),
        ));
        // With trace context on, the request span is INFO so RUST_LOG=info keeps it and its
        // trace context reaches the published messages; otherwise DEBUG costs nothing.
        let span_level = if config.telemetry.traces() {
            tracing::Level::INFO
        } else {
            tracing::Level::DEBUG
        };
        let router = router(state, readiness(&nats, &config), span_level);
        let limits = config.http.limits(config::DEFAULT_REQUEST_TIMEOUT);
        let http =
            pagesync_runtime::HttpService::bind("ingest", config.ingest_addr, router, limits)
                .await?;
        Ok(Self { http })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight deliveries.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        self.http.run_until_stopped(shutdown).await
    }
}

fn router(state: Arc<WebhookState>, ready: ReadyCheck, span_level: tracing::Level) -> Router {
    let webhook = get(webhook::handshake).post(webhook::deliver);
    WEBHOOK_PATHS
        .iter()
        .fold(Router::new(), |r, path| r.route(path, webhook.clone()))
        .with_state(state)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |req: &Request<_>| request_span(req, span_level)),
        )
        .merge(pagesync_runtime::ops::router(ready))
}

/// The request span records the path only: the handshake's query holds the verify token.
fn request_span<B>(req: &Request<B>, level: tracing::Level) -> tracing::Span {
    let (method, path) = (req.method(), req.uri().path());
    if level == tracing::Level::INFO {
        tracing::info_span!("request", %method, %path)
    } else {
        tracing::debug_span!("request", %method, %path)
    }
}

/// Ready while NATS is connected and the stream exists.
fn readiness(nats: &connect::Nats, config: &Config) -> ReadyCheck {
    let client = nats.client.clone();
    let js = nats.js.clone();
    let stream = config.nats.nats_stream.to_string();
    Arc::new(move || {
        let (client, js, stream) = (client.clone(), js.clone(), stream.clone());
        Box::pin(async move {
            pagesync_runtime::ops::nats_connected(&client)?;
            js.get_stream(&stream)
                .await
                .map(|_| ())
                .map_err(|e| format!("stream {stream} is not available: {e}"))
        })
    })
}
