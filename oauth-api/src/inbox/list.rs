//! `GET /api/conversations`, `GET /api/conversations/{page_id}/{psid}` and
//! `GET /api/conversations/{page_id}/{psid}/messages` (contract §6, docs/inbox.md).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use pagesync_schema::{PageId, Psid};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::items::{ConversationItem, MessageItem};
use super::query::{ListQuery, PageQuery, RawListQuery, RawPageQuery};
use super::read;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::store::Caller;

const UNAUTHORIZED: &str = "no session cookie and no valid operator token";
const NOT_FOUND: &str = "no such conversation visible to the caller";

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    pub data: Vec<ConversationItem>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub data: Vec<MessageItem>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The `{page_id}/{psid}` of a conversation's routes (read, reply, status).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConversationPath {
    /// The page id (or Instagram account id).
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub(crate) page_id: String,
    /// The customer's page-scoped id (IGSID on Instagram).
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub(crate) psid: String,
}

/// The conversation a path names, parsed (400 when an id is malformed).
pub fn conversation_key(
    path: Result<Path<ConversationPath>, PathRejection>,
) -> Result<(PageId, Psid), ApiError> {
    let Path(p) = path.map_err(|_| ApiError::NoSuch("conversation"))?;
    let page = PageId::parse(p.page_id)
        .map_err(|e| ApiError::bad_request("invalid_page_id", e.to_string()))?;
    let psid =
        Psid::parse(p.psid).map_err(|e| ApiError::bad_request("invalid_psid", e.to_string()))?;
    Ok((page, psid))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// The caller's conversations, newest activity first.
#[utoipa::path(
    get,
    path = "/api/conversations",
    params(RawListQuery),
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 200, description = "a page of conversations", body = ConversationList),
        (status = 400, description = "a malformed filter, limit or cursor", body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    raw: Result<Query<RawListQuery>, QueryRejection>,
) -> Result<Json<ConversationList>, ApiError> {
    let q = ListQuery::parse(query(raw)?)?;
    let conn = state.pool.get().await?;
    let page = read::list(&**conn, caller, &q, state.inbox.human_agent).await?;
    Ok(Json(ConversationList {
        data: page.items.into_iter().map(|l| l.item).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// One conversation, as a list item.
#[utoipa::path(
    get,
    path = "/api/conversations/{page_id}/{psid}",
    params(ConversationPath),
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 200, description = "the conversation", body = ConversationItem),
        (status = 400, description = "a malformed id", body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<ConversationPath>, PathRejection>,
) -> Result<Json<ConversationItem>, ApiError> {
    let (page, psid) = conversation_key(path)?;
    let conn = state.pool.get().await?;
    read::one(&**conn, caller, &page, &psid, state.inbox.human_agent)
        .await?
        .map(|l| Json(l.item))
        .ok_or(ApiError::NoSuch("conversation"))
}

/// A conversation's messages, oldest first.
#[utoipa::path(
    get,
    path = "/api/conversations/{page_id}/{psid}/messages",
    params(ConversationPath, RawPageQuery),
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 200, description = "a page of messages", body = MessageList),
        (status = 400, description = "a malformed id, limit or cursor", body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
    )
)]
pub async fn messages(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<ConversationPath>, PathRejection>,
    raw: Result<Query<RawPageQuery>, QueryRejection>,
) -> Result<Json<MessageList>, ApiError> {
    let (page, psid) = conversation_key(path)?;
    let q = PageQuery::parse(query(raw)?)?;
    let conn = state.pool.get().await?;
    if read::one(&**conn, caller, &page, &psid, false)
        .await?
        .is_none()
    {
        return Err(ApiError::NoSuch("conversation"));
    }
    let (data, next) = read::messages(&**conn, &page, &psid, &q).await?;
    Ok(Json(MessageList {
        data,
        next_cursor: next.map(|c| c.encode()),
    }))
}
