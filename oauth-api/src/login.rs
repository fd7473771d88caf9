//! `GET /facebook/login` and `GET /facebook/callback` (contract §6).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::connect::{self, ConnectAnswer};
use crate::error::{ApiError, ErrorBody};
use crate::session::{self, Session};
use crate::state_token::StateError;
use crate::store;

/// The permissions the login dialog asks for.
pub const SCOPE: &str =
    "pages_show_list,pages_messaging,pages_manage_metadata,pages_read_engagement";

/// Creates a pending session (a new user uuid, no user yet) when the browser has
/// no live session, then redirects to Facebook's login dialog with a signed state.
#[utoipa::path(
    get,
    path = "/facebook/login",
    responses(
        (status = 307, description = "redirect to FACEBOOK_DIALOG_URL with client_id, redirect_uri, response_type=code, scope and a signed state",
            headers(
                ("location" = String, description = "the login dialog"),
                ("set-cookie" = String, description = "session_id of a pending session (PENDING_SESSION_TTL), when the browser had no live session"),
            )),
    )
)]
pub async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (user, set_cookie) = match session::current_session(&state, &headers).await? {
        Some(s) => (s.user, None),
        None => {
            let (user, cookie) = session::start_pending(&state).await?;
            (user, Some(cookie))
        }
    };
    let st = state.signer.issue(user, Utc::now().timestamp());
    let mut url = state.dialog_url.url().clone();
    url.query_pairs_mut()
        .append_pair("client_id", &state.app_id)
        .append_pair("redirect_uri", state.redirect_uri.as_str())
        .append_pair("response_type", "code")
        .append_pair("scope", SCOPE)
        .append_pair("state", &st);
    let location =
        HeaderValue::from_str(url.as_str()).map_err(|e| anyhow::anyhow!("login URL: {e}"))?;
    let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
    resp.headers_mut().insert(LOCATION, location);
    if let Some(cookie) = set_cookie {
        resp.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(resp)
}

/// What Facebook sends back to the redirect URI.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The login code, exchanged for a user token.
    code: Option<String>,
    /// `<unix_ts>:<nonce>:<user_uuid>:<base64url HMAC-SHA256 without padding>`, as issued
    /// by `/facebook/login`.
    #[param(required = true)]
    state: Option<String>,
    /// Set by Facebook when the person cancelled or the login failed.
    error: Option<String>,
    error_description: Option<String>,
}

/// Checks the state, lets Facebook vouch for the person, logs them in under a
/// fresh session id (the login's session ends), then connects every page and
/// answers with the pages and the self-test results.
#[utoipa::path(
    get,
    path = "/facebook/callback",
    params(CallbackQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "the pages (without tokens) and the self-test results", body = ConnectAnswer,
            headers(
                ("set-cookie" = String, description = "session_id of a new session (SESSION_TTL); the one that started the login no longer works"),
            )),
        (status = 400, description = "state tampered, expired, replayed or of another session; missing code; Facebook refused the code or the login", body = ErrorBody),
        (status = 502, description = "Facebook did not answer", body = ErrorBody),
    )
)]
pub async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|_| ApiError::bad_request("bad_query", "malformed query"))?;
    let outcome = complete_login(&state, &headers, q).await.inspect_err(|e| {
        if let ApiError::State(s) = e {
            crate::metrics::state_rejected(s.label());
            tracing::warn!(reason = s.label(), "OAuth state refused");
        }
    });
    let (answer, cookie) = outcome?;
    if crate::console::connected::wants_html(&headers) {
        return crate::console::connected::page(&answer, cookie);
    }
    Ok(([(SET_COOKIE, cookie)], Json(answer)).into_response())
}

async fn complete_login(
    state: &AppState,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Result<(ConnectAnswer, HeaderValue), ApiError> {
    let session = check_state(state, headers, q.state.as_deref()).await?;
    if let Some(err) = q.error {
        let text = q.error_description.unwrap_or(err);
        return Err(ApiError::bad_request(
            "facebook_login_refused",
            format!("Facebook login did not complete: {text}"),
        ));
    }
    let code = q
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing_code", "the callback has no code"))?;
    let accounts = connect::authorize(state, &code)
        .await
        .inspect_err(|_| crate::metrics::connect("error", 0))?;
    // Before anything is stored under the user: a planted session id must not see it.
    let cookie = session::establish(state, session.user, Some(&session)).await?;
    let answer = connect::connect_pages(state, session.user, &accounts).await;
    crate::metrics::connect("success", answer.pages.data.len());
    Ok((answer, cookie))
}

/// Signature, age, session and nonce, in that order: only a state that passes
/// everything else spends its nonce. Answers the login's session.
async fn check_state(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Result<Session, ApiError> {
    let raw = raw.ok_or(StateError::Malformed)?;
    let verified = state.signer.verify(raw, Utc::now().timestamp())?;
    let session = session::current_session(state, headers)
        .await?
        .ok_or(StateError::NoSession)?;
    if session.user != verified.user {
        return Err(StateError::OtherSession.into());
    }
    let issued =
        DateTime::<Utc>::from_timestamp(verified.issued_at, 0).ok_or(StateError::Malformed)?;
    let conn = state.pool.get().await?;
    if !store::spend_nonce(&**conn, &verified.nonce, issued).await? {
        return Err(StateError::Replayed.into());
    }
    Ok(session)
}
