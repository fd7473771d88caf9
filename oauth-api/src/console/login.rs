//! `/login` (connect with Facebook, or the operator token) and `/logout`.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Layout, MaybeCaller, html};
use crate::AppState;
use crate::error::ApiError;
use crate::session;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    operator_enabled: bool,
    error: Option<&'static str>,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    MaybeCaller(caller): MaybeCaller,
) -> Result<Response, ApiError> {
    if caller.is_some() {
        return Ok(Redirect::to("/inbox").into_response());
    }
    login_page(&state, StatusCode::OK, None)
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    error: Option<&'static str>,
) -> Result<Response, ApiError> {
    let page = LoginPage {
        layout: Layout::for_caller(None, "login"),
        operator_enabled: state.operator_token.is_some(),
        error,
    };
    html(status, &page)
}

#[derive(Deserialize)]
pub struct OperatorLogin {
    operator_token: String,
}

/// A cross-site page may not sign a browser in or out (login CSRF): browsers say
/// where a form came from in `Sec-Fetch-Site`, and the cookies are SameSite.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

pub async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<OperatorLogin>,
) -> Result<Response, ApiError> {
    if cross_site(&headers) {
        return Err(ApiError::Csrf);
    }
    let Some(expected) = &state.operator_token else {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            Some("Operator access is off on this server (no OPERATOR_TOKEN is set)."),
        );
    };
    if !session::operator_token_matches(expected, &form.operator_token)
        || form.operator_token.len() > session::MAX_OPERATOR_COOKIE_LEN
    {
        tracing::warn!("console operator login refused");
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That operator token is not valid."),
        );
    }
    tracing::info!("console operator login");
    let cookie = session::operator_cookie(Some(form.operator_token.trim()), state.secure_cookies);
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/inbox")).into_response())
}

pub async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if cross_site(&headers) {
        return Err(ApiError::Csrf);
    }
    session::end_current(&state, &headers).await?;
    let secure = state.secure_cookies;
    Ok((
        AppendHeaders([
            (SET_COOKIE, session::operator_cookie(None, secure)),
            (SET_COOKIE, session::cleared_session_cookie(secure)),
        ]),
        Redirect::to("/login"),
    )
        .into_response())
}
