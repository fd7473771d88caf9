//! The two webhook routes: the subscription handshake and signed deliveries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use pagesync_schema::{Event, PublishError, Publisher};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::Instrument;

use crate::body::{self, BodyBudget, BodyLimits};
use crate::error::IngestError;
use crate::metrics::IngestMetrics;
use crate::split::split;
use pagesync_schema::signature::{AppSecret, Signature, SignatureError};

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// What the handlers share.
pub struct WebhookState {
    pub secret: AppSecret,
    /// SHA-256 of the verify token, so comparison takes the same time whatever the length.
    pub verify_token_hash: [u8; 32],
    pub publisher: Publisher,
    pub publish_timeout: Duration,
    pub body_limits: BodyLimits,
    /// Bytes of bodies being received, across every delivery.
    pub body_budget: BodyBudget,
    pub metrics: IngestMetrics,
}

impl WebhookState {
    pub fn new(
        secret: &SecretString,
        verify_token: &SecretString,
        publisher: Publisher,
        publish_timeout: Duration,
        body_limits: BodyLimits,
        body_budget: BodyBudget,
    ) -> Self {
        Self {
            secret: AppSecret::new(secret),
            verify_token_hash: Sha256::digest(verify_token.expose_secret().as_bytes()).into(),
            publisher,
            publish_timeout,
            body_limits,
            body_budget,
            metrics: IngestMetrics::register(),
        }
    }
}

/// `GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C` → 200 `C`.
pub async fn handshake(
    State(state): State<Arc<WebhookState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, IngestError> {
    let result = verify_handshake(&state, &params);
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(e) => e.outcome(),
    };
    metrics::counter!("pagesync_ingest_handshakes_total", "outcome" => outcome).increment(1);
    let challenge = result?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        challenge,
    ))
}

fn verify_handshake(
    state: &WebhookState,
    params: &HashMap<String, String>,
) -> Result<String, IngestError> {
    let get = |name: &'static str| params.get(name).ok_or(IngestError::MissingParameter(name));
    let (mode, token, challenge) = (
        get("hub.mode")?,
        get("hub.verify_token")?,
        get("hub.challenge")?,
    );
    let token_hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let token_ok: bool = token_hash.ct_eq(&state.verify_token_hash).into();
    if mode == "subscribe" && token_ok {
        Ok(challenge.clone())
    } else {
        Err(IngestError::VerificationRefused)
    }
}

/// `POST` a signed delivery: 200 `EVENT_RECEIVED` once every event is in JetStream.
pub async fn deliver(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, IngestError> {
    let result = accept(&state, &headers, body).await;
    let outcome = match &result {
        Ok(()) => "accepted",
        Err(e) => e.outcome(),
    };
    state.metrics.delivery(outcome);
    result?;
    Ok((StatusCode::OK, "EVENT_RECEIVED"))
}

/// Checks what can be checked before the body is read (its declared size, the
/// signature header's presence and form), then reads it within its limits.
async fn accept(state: &WebhookState, headers: &HeaderMap, body: Body) -> Result<(), IngestError> {
    if body::declared_over(&body, state.body_limits.max_bytes) {
        return Err(IngestError::TooLarge(state.body_limits.max_bytes));
    }
    let signature = headers
        .get(SIGNATURE_HEADER)
        .ok_or(SignatureError::Missing)
        .and_then(|v| Signature::parse(v.as_bytes()))?;
    let body = body::read(body, state.body_limits, &state.body_budget).await?;
    signature.verify(&state.secret, &body.bytes)?;

    let events = split(&body.bytes, chrono::Utc::now());
    publish(state, &events).await?;
    for event in &events {
        state.metrics.event(event.event_type);
    }
    Ok(())
}

async fn publish(state: &WebhookState, events: &[Event]) -> Result<(), IngestError> {
    let started = Instant::now();
    let (span, traceparent) = pagesync_runtime::trace::publish_span();
    let publishing = state.publisher.publish_all(events, traceparent.as_deref());
    let result = tokio::time::timeout(state.publish_timeout, publishing.instrument(span)).await;
    state
        .metrics
        .publish_seconds
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(Ok(report)) => {
            if report.duplicates > 0 {
                state.metrics.duplicates.increment(report.duplicates as u64);
            }
            Ok(())
        }
        Ok(Err(PublishError::TooLarge { size, max })) => {
            Err(IngestError::ItemTooLarge { size, max })
        }
        Ok(Err(e)) => Err(IngestError::Unavailable(Some(e))),
        Err(_elapsed) => Err(IngestError::Unavailable(None)),
    }
}
