//! `/settings/integrations`: the webhook URL, connecting a page, the integrations.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use pagesync_schema::PageId;
use serde::Deserialize;

use super::{Layout, MaybeCaller, html};
use crate::AppState;
use crate::error::ApiError;
use crate::store::{self, IntegrationView};

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    webhook_url: String,
    integrations: Vec<IntegrationView>,
    /// The page just saved, when the connect form sent the browser here.
    saved: Option<String>,
}

#[derive(Deserialize)]
pub struct SettingsQuery {
    saved: Option<String>,
}

impl IntegrationView {
    /// The status as a person reads it.
    pub fn status_label(&self) -> &'static str {
        match self.status.as_str() {
            "active" => "Active",
            "inactive" => "Inactive",
            "needs_reauth" => "Needs reconnecting",
            _ => "Unknown",
        }
    }
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    MaybeCaller(caller): MaybeCaller,
    Query(query): Query<SettingsQuery>,
) -> Result<Response, ApiError> {
    let Some(caller) = caller else {
        return Ok(Redirect::to("/login").into_response());
    };
    let conn = state.pool.get().await?;
    // The same read as GET /api/integrations/facebook.
    let integrations = store::list_integrations(&**conn, caller, None, &state.webhook_url).await?;
    // Only a page the caller sees is confirmed (the query is the browser's to forge).
    let saved = query
        .saved
        .and_then(|p| PageId::parse(p).ok())
        .filter(|p| integrations.iter().any(|i| i.page_id == p.as_str()))
        .map(|p| p.as_str().to_owned());
    let page = SettingsPage {
        layout: Layout::for_caller(Some(caller), "settings"),
        webhook_url: state.webhook_url.clone(),
        integrations,
        saved,
    };
    html(StatusCode::OK, &page)
}
