//! `POST /api/conversations/{page_id}/{psid}/messages`: a reply through the Send
//! API (contract §6, docs/inbox.md "Replying"), then its `message_echo` event.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use pagesync_graph::{AttachmentKind, GraphError, MessagingType, OutgoingMessage};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::idempotency::{self, IdempotencyKey, Reservation};
use super::target::{self, ConversationPath, Target};
use super::window::{WindowKind, reply_window};
use super::{outbound, refusal};
use crate::AppState;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::store::Caller;

/// Facebook's limit: "UTF-8 and less than 2000 characters"; 2,000 is accepted.
pub const MAX_TEXT_CHARS: usize = 2000;
const MAX_URL_LEN: usize = 2048;

/// The reply routes and the status route, for `crate::routes`.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(send_reply))
        .routes(routes!(super::status::set_status))
}

/// Body of a reply: exactly one of `text` and `attachment`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// 1 to 2,000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub text: Option<String>,
    pub attachment: Option<AttachmentRequest>,
}

/// One attachment Facebook fetches from an http(s) URL.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRequest {
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^(image|video|audio|file)$")]
    pub kind: AttachmentKind,
    /// An http or https URL.
    pub url: String,
}

/// The answer of a sent reply.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Sent {
    /// Facebook's message id (also the `message_echo` event's id).
    pub mid: String,
}

/// A reply that passed validation.
#[derive(Debug, Clone)]
enum Reply {
    Text(String),
    Attachment { kind: AttachmentKind, url: String },
}

impl Reply {
    fn parse(body: Value) -> Result<Self, ApiError> {
        let bad = |m: &str| ApiError::unprocessable("invalid_fields", m.to_owned());
        let req: ReplyRequest = serde_json::from_value(body).map_err(|e| bad(&e.to_string()))?;
        match (req.text, req.attachment) {
            (Some(text), None) => {
                let n = text.chars().count();
                if n == 0 || n > MAX_TEXT_CHARS || text.trim().is_empty() {
                    return Err(bad("text must be 1 to 2000 characters, not only spaces"));
                }
                Ok(Self::Text(text))
            }
            (None, Some(a)) => {
                let ok = a.url.len() <= MAX_URL_LEN
                    && reqwest::Url::parse(&a.url).is_ok_and(|u| {
                        matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                    });
                if !ok {
                    return Err(bad("attachment.url must be an http or https URL"));
                }
                Ok(Self::Attachment {
                    kind: a.kind,
                    url: a.url,
                })
            }
            _ => Err(bad("send exactly one of text and attachment")),
        }
    }

    fn outgoing(&self) -> OutgoingMessage<'_> {
        match self {
            Self::Text(t) => OutgoingMessage::Text(t),
            Self::Attachment { kind, url } => OutgoingMessage::Attachment { kind: *kind, url },
        }
    }
}

/// How a reply ended: a final answer (an Idempotency-Key keeps it) or one given
/// before Facebook took the message (the key is released).
enum Answer {
    Final(StatusCode, Value),
    Passing(ApiError),
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Self::Final(status, body) => (status, Json(body)).into_response(),
            Self::Passing(e) => e.into_response(),
        }
    }
}

/// Reply to the customer: `RESPONSE` within 24 hours of their last message,
/// `HUMAN_AGENT` up to 7 days when enabled, else refused without calling Facebook.
#[utoipa::path(
    post,
    path = "/api/conversations/{page_id}/{psid}/messages",
    params(
        ConversationPath,
        ("Idempotency-Key" = Option<String>, Header,
         description = "1-255 visible ASCII characters: the reply is sent at most once per key (24 h)"),
    ),
    request_body = ReplyRequest,
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 201, description = "sent; the message_echo event is stored", body = Sent),
        (status = 400, description = "malformed JSON or Idempotency-Key", body = ErrorBody),
        (status = 401, description = "no session cookie and no valid operator token", body = ErrorBody),
        (status = 404, description = "no such conversation visible to the caller", body = ErrorBody),
        (status = 409, description = "in_progress (the same key is being answered) or page_not_connected", body = ErrorBody),
        (status = 422, description = "invalid_fields, window_closed, idempotency_key_reused, or facebook_error with facebook: {code, subcode}", body = ErrorBody),
        (status = 502, description = "facebook_unavailable: Facebook did not take the reply after retries", body = ErrorBody),
        (status = 503, description = "echo_not_published: sent (mid given) but its event could not be stored", body = ErrorBody),
    )
)]
pub async fn send_reply(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<ConversationPath>, PathRejection>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let (page, psid) = target::ids(path)?;
    let key = IdempotencyKey::from_headers(&headers)?;
    let path = format!("/api/conversations/{page}/{psid}/messages");
    let fingerprint = idempotency::fingerprint(&Method::POST, &path, &body);
    let reply = Reply::parse(body)?;
    let target = target::visible(&state, caller, &page, &psid).await?;
    // Its own task: a client that hangs up does not stop a reply half-way
    // (sent but not published, or a key left reserved).
    let work = async move {
        match key {
            None => Ok(deliver(&state, &target, &reply).await.into_response()),
            Some(key) => once(&state, caller, &key, &fingerprint, &target, &reply).await,
        }
    };
    tokio::spawn(work)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("the reply task failed")))?
}

/// The reply under an Idempotency-Key: sent at most once, its answer kept.
async fn once(
    state: &AppState,
    caller: Caller,
    key: &IdempotencyKey,
    fingerprint: &[u8],
    target: &Target,
    reply: &Reply,
) -> Result<Response, ApiError> {
    let held = {
        let conn = state.pool.get().await?;
        match idempotency::reserve(&**conn, caller, key, fingerprint).await? {
            Reservation::Held(held) => held,
            Reservation::Replay(status, body) => {
                let replayed = (
                    HeaderName::from_static("idempotent-replayed"),
                    HeaderValue::from_static("true"),
                );
                return Ok((status, [replayed], Json(body)).into_response());
            }
            Reservation::InProgress => {
                return Err(ApiError::Conflict {
                    code: "in_progress",
                    message: "a request with this Idempotency-Key is being answered; retry shortly"
                        .into(),
                });
            }
            Reservation::Reused => {
                return Err(ApiError::unprocessable(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for another request",
                ));
            }
        }
    };
    let answer = deliver(state, target, reply).await;
    // The reply is decided (maybe sent): its answer goes to the client even when
    // the key cannot be updated; the key then stays pending until taken over.
    if let Err(e) = settle(state, caller, key, held, &answer).await {
        tracing::error!(
            error = format!("{e:#}"),
            "could not record the answer of an Idempotency-Key"
        );
    }
    Ok(answer.into_response())
}

/// Keeps a final answer under the key, or frees the key.
async fn settle(
    state: &AppState,
    caller: Caller,
    key: &IdempotencyKey,
    held: idempotency::Held,
    answer: &Answer,
) -> anyhow::Result<()> {
    let conn = state.pool.get().await?;
    match answer {
        Answer::Final(status, body) => {
            idempotency::complete(&**conn, caller, key, held, *status, body).await?
        }
        Answer::Passing(_) => idempotency::release(&**conn, caller, key, held).await?,
    }
    Ok(())
}

async fn deliver(state: &AppState, target: &Target, reply: &Reply) -> Answer {
    let answer = match send(state, target, reply).await {
        Ok(answer) => answer,
        Err(e) => Answer::Passing(e),
    };
    crate::metrics::reply(match &answer {
        Answer::Final(status, _) if *status == StatusCode::CREATED => "sent",
        Answer::Final(status, _) if *status == StatusCode::SERVICE_UNAVAILABLE => {
            "echo_not_published"
        }
        Answer::Final(..) => "facebook_error",
        Answer::Passing(e) => e.code(),
    });
    answer
}

/// The window, the token, the Send API call, then the echo event.
async fn send(state: &AppState, target: &Target, reply: &Reply) -> Result<Answer, ApiError> {
    let conn = state.pool.get().await?;
    let last = target::last_customer_message(&**conn, target).await?;
    let messaging_type = match reply_window(last, Utc::now(), state.inbox.human_agent).kind {
        WindowKind::Response => MessagingType::Response,
        WindowKind::HumanAgent => MessagingType::MessageTag("HUMAN_AGENT"),
        WindowKind::Closed => return Err(window_closed(last.is_some(), state)),
    };
    let (page, token) = target::page_token(state, &**conn, target).await?;
    drop(conn);
    let message = reply.outgoing();
    let psid = target.psid.as_str();
    match state
        .graph
        .send(page.as_str(), &token, psid, &message, messaging_type)
        .await
    {
        Ok(sent) => Ok(publish_echo(state, target, &message, &sent.message_id).await),
        Err(e) => refused(state, &page, e).await,
    }
}

fn window_closed(customer_wrote: bool, state: &AppState) -> ApiError {
    let message = match (customer_wrote, state.inbox.human_agent) {
        (false, _) => "the customer has not written yet, so the page cannot reply",
        (true, false) => {
            "the customer's last message is more than 24 hours old (MESSENGER_HUMAN_AGENT is off)"
        }
        (true, true) => "the customer's last message is more than 7 days old",
    };
    ApiError::unprocessable("window_closed", message)
}

/// Facebook's refusal is final (and a rejected token marks the integration);
/// Facebook away is not.
async fn refused(
    state: &AppState,
    page: &pagesync_schema::PageId,
    e: GraphError,
) -> Result<Answer, ApiError> {
    if let GraphError::TokenInvalid { subcode, .. } = &e {
        tracing::warn!(page_id = %page, ?subcode, "page token rejected on a reply; integration needs re-authentication");
        let conn = state.pool.get().await?;
        target::mark_needs_reauth(&**conn, page, *subcode).await?;
    }
    Ok(match refusal::answer(e) {
        e @ ApiError::FacebookRefused { .. } => Answer::Final(e.status(), e.body()),
        other => Answer::Passing(other),
    })
}

/// 201 once JetStream acknowledged the echo; the reply went out either way.
async fn publish_echo(
    state: &AppState,
    target: &Target,
    message: &OutgoingMessage<'_>,
    mid: &str,
) -> Answer {
    let published = match outbound::reply_echo(target, message, mid, &state.app_id, Utc::now()) {
        Some(event) => {
            let (span, traceparent) = pagesync_runtime::trace::publish_span();
            state
                .publisher
                .publish_all(&[event], traceparent.as_deref())
                .instrument(span)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        None => Err("the message id cannot be an event id".to_owned()),
    };
    match published {
        Ok(()) => {
            tracing::info!(page_id = %target.page, mid, "reply sent");
            Answer::Final(StatusCode::CREATED, json!({ "mid": mid }))
        }
        Err(error) => {
            tracing::error!(page_id = %target.page, mid, error, "reply sent but its echo event was not published");
            Answer::Final(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "echo_not_published", "mid": mid,
                       "message": "the reply was sent, but its event could not be stored; \
                                   Facebook's echo webhook will bring it"}),
            )
        }
    }
}
