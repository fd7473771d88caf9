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

/// Below this share of messages first seen by webhook, Settings warns (issue 11).
const COVERAGE_WARNING_BELOW: f64 = 0.95;

impl IntegrationView {
    /// One sentence per platform whose webhooks brought too few of the window's
    /// messages first (the poller found the rest later).
    pub fn coverage_warnings(&self) -> Vec<String> {
        let c = &self.webhook_coverage;
        [
            ("Messenger", Some(&c.messenger)),
            ("Instagram", c.instagram.as_ref()),
        ]
        .into_iter()
        .filter_map(|(platform, counts)| {
            let counts = counts?;
            let ratio = counts.ratio.filter(|r| *r < COVERAGE_WARNING_BELOW)?;
            Some(format!(
                "{platform}: webhooks brought {:.0}% of the last {} days' messages first; \
                     {} arrived only by polling. Check the app's webhook subscription.",
                ratio * 100.0,
                c.window_days,
                counts.poll_only
            ))
        })
        .collect()
    }

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
    let integrations =
        store::list_integrations(&**conn, caller, None, state.webhook_url.as_str()).await?;
    // Only a page the caller sees is confirmed (the query is the browser's to forge).
    let saved = query
        .saved
        .and_then(|p| PageId::parse(p).ok())
        .filter(|p| integrations.iter().any(|i| i.page_id == p.as_str()))
        .map(|p| p.as_str().to_owned());
    let page = SettingsPage {
        layout: Layout::for_caller(Some(caller), "settings"),
        webhook_url: state.webhook_url.to_string(),
        integrations,
        saved,
    };
    html(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coverage::{CoverageCounts, WebhookCoverage};

    fn view(messenger: CoverageCounts, instagram: Option<CoverageCounts>) -> IntegrationView {
        IntegrationView {
            page_id: "1".into(),
            name: None,
            active: true,
            status: "active".into(),
            updated_at: chrono::Utc::now(),
            last_webhook_at: None,
            last_poll_at: None,
            webhook_url: String::new(),
            instagram_account_id: None,
            webhook_coverage: WebhookCoverage {
                window_days: 7,
                messenger,
                instagram,
            },
        }
    }

    fn counts(webhook: i64, poll_only: i64) -> CoverageCounts {
        let seen = webhook + poll_only;
        CoverageCounts {
            webhook,
            poll_only,
            send: 0,
            ratio: (seen > 0).then(|| webhook as f64 / seen as f64),
        }
    }

    #[test]
    fn settings_warn_per_platform_when_webhooks_bring_under_95_percent_first() {
        assert!(view(counts(95, 5), None).coverage_warnings().is_empty());
        assert!(
            view(counts(0, 0), None).coverage_warnings().is_empty(),
            "no messages, no warning"
        );
        let w = view(counts(19, 1), Some(counts(9, 3))).coverage_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("Instagram: webhooks brought 75% of the last 7 days"),
            "{w:?}"
        );
        assert!(w[0].contains("3 arrived only by polling"), "{w:?}");
        let w = view(counts(1, 9), None).coverage_warnings();
        assert!(w[0].starts_with("Messenger: webhooks brought 10%"), "{w:?}");
    }
}
