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
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::store::{self, Caller, Connection, IntegrationView};

// Descriptions of the error answers every route shares.
const UNAUTHORIZED: &str = "no session cookie and no valid operator token";
const NOT_FOUND: &str = "no such integration visible to the caller";
const CSRF: &str = "CSRF check failed (cookie without a JSON content type or X-Requested-With)";

/// Longest page token accepted (Facebook's are a few hundred characters).
const MAX_TOKEN_LEN: usize = 4096;

/// Body of `PUT`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutIntegration {
    /// A page access token; stored encrypted, never shown again.
    #[schema(write_only)]
    pub access_token: String,
    /// Whether the poller polls the page.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Body of `PATCH`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchIntegration {
    /// Whether the poller polls the page.
    pub active: bool,
}

#[derive(Debug, serde::Serialize, ToSchema)]
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

/// The `{page_id}` of the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PagePath {
    /// Facebook's page id.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    page_id: String,
}

fn page_id(path: Result<Path<PagePath>, PathRejection>) -> Result<PageId, ApiError> {
    let Path(PagePath { page_id }) = path.map_err(|_| ApiError::NotFound)?;
    PageId::parse(page_id).map_err(|e| ApiError::bad_request("invalid_page_id", e.to_string()))
}

/// List the caller's integrations (operators: all).
#[utoipa::path(
    get,
    path = "/api/integrations/facebook",
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 200, description = "the integrations", body = IntegrationList),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<IntegrationList>, ApiError> {
    let conn = state.pool.get().await?;
    let data = store::list_integrations(&**conn, caller, None, state.webhook_url.as_str()).await?;
    Ok(Json(IntegrationList { data }))
}

/// One integration.
#[utoipa::path(
    get,
    path = "/api/integrations/facebook/{page_id}",
    params(PagePath),
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 200, description = "the integration", body = IntegrationView),
        (status = 400, description = "malformed page id", body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<PagePath>, PathRejection>,
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
    store::list_integrations(&**conn, caller, Some(page), state.webhook_url.as_str())
        .await?
        .into_iter()
        .next()
        .ok_or(ApiError::NotFound)
}

/// Connect a page with a page access token: checked against the Graph API, the
/// page subscribed, then the token stored encrypted.
#[utoipa::path(
    put,
    path = "/api/integrations/facebook/{page_id}",
    params(PagePath),
    request_body = PutIntegration,
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 200, description = "replaced", body = IntegrationView),
        (status = 201, description = "created", body = IntegrationView),
        (status = 400, description = "malformed JSON or page id", body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = CSRF, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
        (status = 422, description = "wrong fields, or Facebook rejected the token (its message)", body = ErrorBody),
        (status = 502, description = "Facebook did not answer", body = ErrorBody),
    )
)]
pub async fn put(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<PagePath>, PathRejection>,
    ApiJson(body): ApiJson<PutIntegration>,
) -> Result<Response, ApiError> {
    let page = page_id(path)?;
    let token = parse_token(body.access_token)?;
    refuse_anothers_page(&state, caller, &page).await?;
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
    let instagram = crate::connect::read_instagram(&state, &page, &token).await;
    let sealed = state.cipher.encrypt(token.expose(), page.as_str());
    let connection = Connection {
        page: &page,
        name: node.fields.get("name").and_then(|v| v.as_str()),
        sealed: &sealed,
        active: body.active,
        owner: match caller {
            Caller::User(u) => Some(u),
            Caller::Operator => None,
        },
    };
    let created = store_connection(&state, &connection, instagram.as_ref()).await?;
    tracing::info!(page_id = %page, created, "integration stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&state, caller, &page).await?)).into_response())
}

/// Another user's page is answered as if it did not exist (reconnecting through
/// Facebook login moves it).
async fn refuse_anothers_page(
    state: &AppState,
    caller: Caller,
    page: &PageId,
) -> Result<(), ApiError> {
    let conn = state.pool.get().await?;
    match (caller, store::integration_owner(&**conn, page).await?) {
        (Caller::User(me), Some(Some(owner))) if owner != me => Err(ApiError::NotFound),
        _ => Ok(()),
    }
}

/// Stores the integration and, when it was read (`Some`), its Instagram link, in
/// one transaction, then records the subscription made before. True when created.
async fn store_connection(
    state: &AppState,
    connection: &Connection<'_>,
    instagram: Option<&Option<PageId>>,
) -> Result<bool, ApiError> {
    let mut conn = state.pool.get().await?;
    let tx = conn.transaction().await?;
    let created = store::upsert_integration(&*tx, connection).await?;
    if let Some(account) = instagram {
        store::link_instagram(&*tx, connection.page, account.as_ref()).await?;
    }
    tx.commit().await?;
    store::record_subscription(&**conn, connection.page, true).await?;
    Ok(created)
}

/// Activate or deactivate polling of a page.
#[utoipa::path(
    patch,
    path = "/api/integrations/facebook/{page_id}",
    params(PagePath),
    request_body = PatchIntegration,
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 200, description = "updated", body = IntegrationView),
        (status = 400, description = "malformed JSON or page id", body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = CSRF, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
        (status = 422, description = "wrong fields", body = ErrorBody),
    )
)]
pub async fn patch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<PagePath>, PathRejection>,
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

/// Remove the token and stop polling; the page's history stays.
#[utoipa::path(
    delete,
    path = "/api/integrations/facebook/{page_id}",
    params(PagePath),
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "malformed page id", body = ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = CSRF, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<PagePath>, PathRejection>,
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
