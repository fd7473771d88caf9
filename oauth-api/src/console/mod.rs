//! The operator console (contract §6 "Console", docs/console.md): server-rendered
//! pages for people on top of the JSON API. Pages read through the same store
//! functions as the API routes and act through the API itself (from the browser),
//! so no rule (window, tenancy, status) has a second code path.

mod assets;
pub mod connected;
mod inbox;
mod login;
mod settings;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::AppState;
use crate::error::ApiError;
use crate::store::Caller;

/// What pages may load: our own scripts, styles and API; images also from https
/// (attachment thumbnails live on Facebook's CDN); nothing inline, no framing.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' https: data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/settings/integrations", get(settings::page))
        .route("/inbox", get(inbox::page))
        .route("/assets/{name}", get(assets::serve))
        // Browsers ask for it whatever the page links.
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent("/assets/favicon.svg") }),
        )
}

/// The shared frame of every page.
pub struct Layout {
    /// Appended to asset URLs, so a new release is never served stale assets.
    pub assets: &'static str,
    pub signed_in: bool,
    pub operator: bool,
    pub section: &'static str,
}

impl Layout {
    fn for_caller(caller: Option<Caller>, section: &'static str) -> Self {
        Self {
            assets: assets::version(),
            signed_in: caller.is_some(),
            operator: caller == Some(Caller::Operator),
            section,
        }
    }
}

/// The page's caller, or none (then the page shows or leads to the login). An
/// invalid credential counts as none; a failure to check it is an error.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<Arc<AppState>> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await {
            Ok(caller) => Ok(Self(Some(caller))),
            Err(ApiError::Unauthorized(_)) => Ok(Self(None)),
            Err(e) => Err(e),
        }
    }
}

/// `/`: the inbox for a signed-in caller, else the login page.
async fn home(MaybeCaller(caller): MaybeCaller) -> Redirect {
    match caller {
        Some(_) => Redirect::to("/inbox"),
        None => Redirect::to("/login"),
    }
}

/// A rendered page with the console's CSP (the API's stays as strict as it was).
fn html(status: StatusCode, page: &impl Template) -> Result<Response, ApiError> {
    let body = page
        .render()
        .map_err(|e| anyhow::Error::new(e).context("rendering a console page"))?;
    Ok((
        status,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP)),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}
