//! Subscribing a page to our app's webhooks: `GET /{page}/subscribed_apps`, then a
//! `POST` only when our app is missing.

use pagesync_graph::{AccessToken, GraphClient, GraphError, SUBSCRIBED_FIELDS};
use pagesync_schema::PageId;

/// What the subscription step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    /// Our app was already in the page's `subscribed_apps`; nothing was posted.
    Already,
    /// Posted `subscribed_apps` with every field we need.
    Now,
}

/// Makes sure the page delivers webhooks to our app.
pub async fn ensure_subscribed(
    graph: &GraphClient,
    app_id: &str,
    page: &PageId,
    token: &AccessToken,
) -> Result<Subscribed, GraphError> {
    let apps = graph.subscribed_apps(page.as_str(), token).await?;
    if apps.iter().any(|a| a.id == app_id) {
        tracing::info!(page_id = %page, "page already subscribed to our app; not posting again");
        crate::metrics::subscription("already");
        return Ok(Subscribed::Already);
    }
    let confirmed = graph
        .subscribe_app(page.as_str(), token, &SUBSCRIBED_FIELDS)
        .await?;
    if !confirmed {
        crate::metrics::subscription("failed");
        return Err(GraphError::Unexpected(
            "Facebook did not confirm the subscription",
        ));
    }
    tracing::info!(page_id = %page, "page subscribed to webhooks");
    crate::metrics::subscription("subscribed");
    Ok(Subscribed::Now)
}
