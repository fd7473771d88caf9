//! `/inbox`: the frame of the inbox; the conversations, the thread and the reply
//! box are the JSON API's, fetched by `assets/inbox.js`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::{Layout, MaybeCaller, html};
use crate::AppState;
use crate::error::ApiError;
use crate::store::{self, IntegrationView};

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    layout: Layout,
    /// For the page filter.
    pages: Vec<IntegrationView>,
    /// Tells our own replies from other apps' echoes.
    app_id: String,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    MaybeCaller(caller): MaybeCaller,
) -> Result<Response, ApiError> {
    let Some(caller) = caller else {
        return Ok(Redirect::to("/login").into_response());
    };
    let conn = state.pool.get().await?;
    let pages = store::list_integrations(&**conn, caller, None, state.webhook_url.as_str()).await?;
    let page = InboxPage {
        layout: Layout::for_caller(Some(caller), "inbox"),
        pages,
        app_id: state.app_id.clone(),
    };
    html(StatusCode::OK, &page)
}
