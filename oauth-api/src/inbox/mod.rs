//! The inbox API (contract §6, docs/inbox.md): conversations, their messages,
//! replies through the Send API, open/closed status and live updates.

pub mod cursor;
pub mod events;
pub mod feed;
pub mod idempotency;
pub mod items;
pub mod list;
pub mod outbound;
pub mod query;
pub mod read;
pub mod refusal;
pub mod reply;
pub mod status;
pub mod target;
pub mod window;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// What the inbox routes share.
pub struct Inbox {
    /// `MESSENGER_HUMAN_AGENT`: whether the reply window has a human-agent phase.
    pub human_agent: bool,
    pub feed: feed::Feed,
}

/// Adds the read side: the list, one conversation, its messages, the event stream.
pub fn read_routes(router: OpenApiRouter<Arc<AppState>>) -> OpenApiRouter<Arc<AppState>> {
    router
        .routes(routes!(list::list))
        .routes(routes!(list::get_one))
        .routes(routes!(list::messages))
        .routes(routes!(events::events))
}
