//! `PATCH /api/conversations/{page_id}/{psid}` `{"status"}`: opens or closes a
//! conversation by publishing a `conversation_status` event (contract §3, §6,
//! docs/inbox.md "Open and closed"). The projector applies it by its `at`; a
//! later incoming message reopens the conversation.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::ToSchema;

use super::outbound;
use super::target::{self, ConversationPath};
use crate::AppState;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::store::Caller;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    Open,
    Closed,
}

/// Body of `PATCH`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub status: ConversationStatus,
}

/// The status change as accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusAccepted {
    pub page_id: String,
    pub psid: String,
    pub status: ConversationStatus,
}

/// Open or close a conversation. 202: the event is stored in the stream; the
/// conversation shows the status once the projector applied it.
#[utoipa::path(
    patch,
    path = "/api/conversations/{page_id}/{psid}",
    params(ConversationPath),
    request_body = StatusRequest,
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 202, description = "the conversation_status event is stored", body = StatusAccepted),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 401, description = "no session cookie and no valid operator token", body = ErrorBody),
        (status = 404, description = "no such conversation visible to the caller", body = ErrorBody),
        (status = 422, description = "status is not open or closed", body = ErrorBody),
    )
)]
pub async fn set_status(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<ConversationPath>, PathRejection>,
    ApiJson(body): ApiJson<StatusRequest>,
) -> Result<(StatusCode, Json<StatusAccepted>), ApiError> {
    let (page, psid) = target::ids(path)?;
    let target = target::visible(&state, caller, &page, &psid).await?;
    let event =
        outbound::status_change(&target, body.status == ConversationStatus::Open, Utc::now());
    let (span, traceparent) = pagesync_runtime::trace::publish_span();
    state
        .publisher
        .publish_all(&[event], traceparent.as_deref())
        .instrument(span)
        .await
        .map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("publishing a status change"))
        })?;
    tracing::info!(page_id = %page, status = ?body.status, "conversation status published");
    Ok((
        StatusCode::ACCEPTED,
        Json(StatusAccepted {
            page_id: page.to_string(),
            psid: psid.to_string(),
            status: body.status,
        }),
    ))
}
