//! `/api/admin/dead-letters`: the projector's dead letters for operators (list,
//! show, retry, discard; docs/runbook.md "Dead letters"). Only
//! `Authorization: Bearer <OPERATOR_TOKEN>` opens these routes: neither a user's
//! session nor the console's operator cookie does.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use pagesync_schema::dead_letters::{self, DeadLetter};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::session::operator_token_matches;

const UNAUTHORIZED: &str = "no valid Authorization: Bearer <OPERATOR_TOKEN>";
const NOT_FOUND: &str = "no dead letter at this stream sequence";
const MAX_LIMIT: i64 = 1000;

/// The admin routes, for `crate::routes`.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, discard))
        .routes(routes!(retry))
}

/// An operator, authenticated by the bearer token alone.
pub struct Operator;

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized(UNAUTHORIZED))?;
        match &state.operator_token {
            Some(expected) if operator_token_matches(expected, presented) => Ok(Operator),
            Some(_) => Err(ApiError::Unauthorized("operator token is not valid")),
            None => Err(ApiError::Unauthorized("operator access is not enabled")),
        }
    }
}

/// A dead letter: an event the projector could not apply.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// Its JetStream stream sequence: the key of the other routes.
    pub stream_seq: i64,
    pub subject: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// Why the projector refused it, the last time.
    pub error: String,
    pub attempts: i32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
    /// The message as the projector received it (only from the single-letter route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        Self {
            stream_seq: d.stream_seq,
            subject: d.subject,
            event_id: d.event_id,
            event_type: d.event_type,
            error: d.error,
            attempts: d.attempts,
            first_failed_at: d.first_failed_at,
            last_failed_at: d.last_failed_at,
            payload: d.payload,
        }
    }
}

/// A page of dead letters, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub data: Vec<DeadLetterView>,
    /// How many dead letters there are in all.
    pub total: i64,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only dead letters after this stream sequence.
    pub after: Option<i64>,
    /// At most this many (1 to 1000, default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SeqPath {
    /// The dead letter's stream sequence.
    pub stream_seq: i64,
}

/// What a retry did: the event is back in the stream, where the projector applies it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    pub stream_seq: i64,
    /// The stream sequence of the copy published again.
    pub republished_as: u64,
}

/// List the dead letters.
#[utoipa::path(
    get,
    path = "/api/admin/dead-letters",
    params(ListParams),
    security(("operator" = [])),
    responses(
        (status = 200, description = "the dead letters, without payloads", body = DeadLetterList),
        (status = 400, description = "limit out of range", body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _operator: Operator,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let conn = state.pool.get().await?;
    let letters = dead_letters::list(&**conn, params.after.unwrap_or(0), limit).await?;
    let total = dead_letters::count(&**conn).await?;
    // A full page may have more behind it.
    let next_after = if letters.len() as i64 == limit {
        letters.last().map(|d| d.stream_seq)
    } else {
        None
    };
    let data = letters.into_iter().map(DeadLetterView::from).collect();
    Ok(Json(DeadLetterList {
        data,
        total,
        next_after,
    }))
}

fn seq(path: Result<Path<SeqPath>, PathRejection>) -> Result<i64, ApiError> {
    path.map(|Path(p)| p.stream_seq)
        .map_err(|_| ApiError::NoSuch("dead letter"))
}

async fn find(state: &AppState, stream_seq: i64) -> Result<DeadLetter, ApiError> {
    let conn = state.pool.get().await?;
    dead_letters::get(&**conn, stream_seq)
        .await?
        .ok_or(ApiError::NoSuch("dead letter"))
}

/// One dead letter, with its payload.
#[utoipa::path(
    get,
    path = "/api/admin/dead-letters/{stream_seq}",
    params(SeqPath),
    security(("operator" = [])),
    responses(
        (status = 200, description = "the dead letter", body = DeadLetterView),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    _operator: Operator,
    path: Result<Path<SeqPath>, PathRejection>,
) -> Result<Json<DeadLetterView>, ApiError> {
    let letter = find(&state, seq(path)?).await?;
    Ok(Json(letter.into()))
}

/// Send a dead letter round again: its payload is published to its subject once
/// more and its row removed; the projector applies the copy like any event (or
/// sets it aside again, under its new stream sequence).
#[utoipa::path(
    post,
    path = "/api/admin/dead-letters/{stream_seq}/retry",
    params(SeqPath),
    security(("operator" = [])),
    responses(
        (status = 202, description = "published again", body = Retried),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<Arc<AppState>>,
    _operator: Operator,
    path: Result<Path<SeqPath>, PathRejection>,
) -> Result<(StatusCode, Json<Retried>), ApiError> {
    let letter = find(&state, seq(path)?).await?;
    let payload = letter.payload.clone().unwrap_or_default().into_bytes();
    // A second retry of the same attempt inside the duplicate window is one publish.
    let msg_id = format!("dead-letter-{}-{}", letter.stream_seq, letter.attempts);
    let (span, traceparent) = pagesync_runtime::trace::publish_span();
    let republished_as = state
        .publisher
        .publish_raw(&letter.subject, payload, &msg_id, traceparent.as_deref())
        .instrument(span)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("republishing")))?;
    // After the publish: a failure in between leaves the row, and a retry of it
    // is applied once (event ids are deduplicated) or dead again.
    let conn = state.pool.get().await?;
    dead_letters::discard(&**conn, &[letter.stream_seq]).await?;
    tracing::info!(
        stream_seq = letter.stream_seq,
        republished_as,
        "dead letter published again"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(Retried {
            stream_seq: letter.stream_seq,
            republished_as,
        }),
    ))
}

/// Give a dead letter up: its row is deleted, the event is not applied.
#[utoipa::path(
    delete,
    path = "/api/admin/dead-letters/{stream_seq}",
    params(SeqPath),
    security(("operator" = [])),
    responses(
        (status = 204, description = "discarded"),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
    )
)]
pub async fn discard(
    State(state): State<Arc<AppState>>,
    _operator: Operator,
    path: Result<Path<SeqPath>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let stream_seq = seq(path)?;
    let conn = state.pool.get().await?;
    if dead_letters::discard(&**conn, &[stream_seq])
        .await?
        .is_empty()
    {
        return Err(ApiError::NoSuch("dead letter"));
    }
    tracing::info!(stream_seq, "dead letter discarded");
    Ok(StatusCode::NO_CONTENT)
}
