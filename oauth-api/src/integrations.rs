//! `/api/integrations/facebook[/{page_id}]`: pages connected by hand with a page
//! token (contract §6). Session users see and change only their own pages.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pagesync_graph::{AccessToken, GraphError};
use pagesync_schema::PageId;
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, ApiJson};
use crate::store::{self, Caller, Connection, IntegrationView};

/// Longest page token accepted (Facebook's are a few hundred characters).
const MAX_TOKEN_LEN: usize = 4096;

/// Body of `PUT`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutIntegration {
    pub access_token: String,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Body of `PATCH`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchIntegration {
    pub active: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct IntegrationList {
    pub data: Vec<IntegrationView>,
}

/// CSRF: a cookie-authenticated request that changes state must say it is JSON (or
/// carry `X-Requested-With`), which a cross-site form cannot do without CORS.
pub async fn csrf_guard(req: Request, next: Next) -> Result<Response, ApiError> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let bearer = req.headers().contains_key(AUTHORIZATION);
    let json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    let declared = req.headers().contains_key("x-requested-with");
    if safe || bearer || json || declared {
        Ok(next.run(req).await)
    } else {
        Err(ApiError::Csrf)
    }
}

fn page_id(path: Result<Path<String>, PathRejection>) -> Result<PageId, ApiError> {
    let Path(raw) = path.map_err(|_| ApiError::NotFound)?;
    PageId::parse(raw).map_err(|e| ApiError::bad_request("invalid_page_id", e.to_string()))
}

/// `GET /api/integrations/facebook`
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<IntegrationList>, ApiError> {
    let conn = state.pool.get().await?;
    let data = store::list_integrations(&**conn, caller, None, &state.webhook_url).await?;
    Ok(Json(IntegrationList { data }))
}

/// `GET /api/integrations/facebook/{page_id}`
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<IntegrationView>, ApiError> {
    let page = page_id(path)?;
    view(&state, caller, &page).await.map(Json)
}

async fn view(
    state: &AppState,
    caller: Caller,
    page: &PageId,
) -> Result<IntegrationView, ApiError> {
    let conn = state.pool.get().await?;
    store::list_integrations(&**conn, caller, Some(page), &state.webhook_url)
        .await?
        .into_iter()
        .next()
        .ok_or(ApiError::NotFound)
}

/// `PUT /api/integrations/facebook/{page_id}`: checks the token against the Graph
/// API, subscribes the page, then stores the token encrypted.
pub async fn put(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<PutIntegration>,
) -> Result<Response, ApiError> {
    let page = page_id(path)?;
    let token = parse_token(body.access_token)?;
    {
        let conn = state.pool.get().await?;
        if let (Caller::User(me), Some(Some(owner))) =
            (caller, store::integration_owner(&**conn, &page).await?)
            && owner != me
        {
            // Another user's page: as if it did not exist (reconnecting through
            // Facebook login moves it).
            return Err(ApiError::NotFound);
        }
    }
    let node = state
        .graph
        .page(page.as_str(), &token)
        .await
        .map_err(rejected)?;
    if node.id != page.as_str() {
        return Err(ApiError::Facebook(format!(
            "the access token belongs to page {}, not {page}",
            node.id
        )));
    }
    crate::connect::subscribe(&state, &page, &token)
        .await
        .map_err(ApiError::Facebook)?;
    let name = node.fields.get("name").and_then(|v| v.as_str());
    let sealed = state.cipher.encrypt(token.expose(), page.as_str());
    let owner = match caller {
        Caller::User(u) => Some(u),
        Caller::Operator => None,
    };
    let created = {
        let mut conn = state.pool.get().await?;
        let tx = conn.transaction().await?;
        let created = store::upsert_integration(
            &*tx,
            &Connection {
                page: &page,
                name,
                sealed: &sealed,
                active: body.active,
                owner,
            },
        )
        .await?;
        tx.commit().await?;
        created
    };
    let conn = state.pool.get().await?;
    store::record_subscription(&**conn, &page, true).await?;
    drop(conn);
    tracing::info!(page_id = %page, created, "integration stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&state, caller, &page).await?)).into_response())
}

/// `PATCH /api/integrations/facebook/{page_id}` `{"active"}`
pub async fn patch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<PatchIntegration>,
) -> Result<Json<IntegrationView>, ApiError> {
    let page = page_id(path)?;
    let conn = state.pool.get().await?;
    if !store::set_active(&**conn, caller, &page, body.active).await? {
        return Err(ApiError::NotFound);
    }
    drop(conn);
    tracing::info!(page_id = %page, active = body.active, "integration updated");
    view(&state, caller, &page).await.map(Json)
}

/// `DELETE /api/integrations/facebook/{page_id}`: the token goes, polling stops,
/// the page's history stays.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let page = page_id(path)?;
    let conn = state.pool.get().await?;
    if !store::delete_integration(&**conn, caller, &page).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(page_id = %page, "integration deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn parse_token(raw: String) -> Result<AccessToken, ApiError> {
    let bad = |m: &str| ApiError::unprocessable("invalid_fields", m.to_owned());
    if raw.is_empty() {
        return Err(bad("access_token must not be empty"));
    }
    if raw.len() > MAX_TOKEN_LEN || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "access_token must be printable ASCII without spaces, at most 4096 characters",
        ));
    }
    Ok(AccessToken::new(raw))
}

/// Facebook refusing the token is 422 with its message; Facebook away is 502.
fn rejected(e: GraphError) -> ApiError {
    match e {
        // The graph client scrubs the submitted token out of Facebook's text.
        GraphError::TokenInvalid { message, .. }
        | GraphError::Permission { message, .. }
        | GraphError::Api { message, .. } => ApiError::Facebook(message),
        other => ApiError::FacebookUnavailable(format!("Facebook did not answer: {other}")),
    }
}
