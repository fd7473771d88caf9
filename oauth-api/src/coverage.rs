//! Webhook coverage (issue 11): of the messages of the last days, how many a
//! webhook brought first, how many only a poll found (the webhook never came, or
//! came after the poll), and how many were our own sends. Derived from the
//! projector's `message_first_seen`, so a rebuild gives the same figures.

use std::collections::HashMap;

use serde::Serialize;
use tokio_postgres::GenericClient;

/// The rolling window, by the messages' own time.
pub const WINDOW_DAYS: u32 = 7;

/// One account's counts over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CoverageCounts {
    /// First seen by webhook.
    pub webhook: i64,
    /// First seen by the poller: the webhook missed it or came after the poll.
    pub poll_only: i64,
    /// First seen as a reply sent through the inbox API.
    pub send: i64,
    /// `webhook / (webhook + poll_only)`; null when there was neither.
    #[schema(required = true)]
    pub ratio: Option<f64>,
}

/// A page's coverage, and its linked Instagram account's when it has one.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WebhookCoverage {
    pub window_days: u32,
    pub messenger: CoverageCounts,
    /// Null when the page has no linked Instagram account.
    #[schema(required = true)]
    pub instagram: Option<CoverageCounts>,
}

impl CoverageCounts {
    fn with_ratio(mut self) -> Self {
        let seen = self.webhook + self.poll_only;
        self.ratio = (seen > 0).then(|| self.webhook as f64 / seen as f64);
        self
    }
}

/// The counts of each account id (pages and Instagram accounts) over the window.
pub async fn counts(
    c: &impl GenericClient,
    accounts: &[&str],
) -> Result<HashMap<String, CoverageCounts>, tokio_postgres::Error> {
    if accounts.is_empty() {
        return Ok(HashMap::new());
    }
    let since_ms =
        (chrono::Utc::now() - chrono::Duration::days(WINDOW_DAYS.into())).timestamp_millis();
    let rows = c
        .query(
            "SELECT page_id,
                    count(*) FILTER (WHERE origin = 'webhook'),
                    count(*) FILTER (WHERE origin = 'poll'),
                    count(*) FILTER (WHERE origin = 'send')
             FROM message_first_seen
             WHERE page_id = ANY($1) AND timestamp_ms >= $2
             GROUP BY page_id",
            &[&accounts, &since_ms],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let counts = CoverageCounts {
                webhook: r.get(1),
                poll_only: r.get(2),
                send: r.get(3),
                ratio: None,
            };
            (r.get(0), counts)
        })
        .collect())
}

/// The coverage of a page (and of `instagram`, its linked account) from `counts`.
pub fn of(
    counts: &HashMap<String, CoverageCounts>,
    page: &str,
    instagram: Option<&str>,
) -> WebhookCoverage {
    let get = |id: &str| counts.get(id).copied().unwrap_or_default().with_ratio();
    WebhookCoverage {
        window_days: WINDOW_DAYS,
        messenger: get(page),
        instagram: instagram.map(get),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_counts_webhooks_among_what_facebook_delivered_and_is_null_without_any() {
        let counts = HashMap::from([(
            "p".to_owned(),
            CoverageCounts {
                webhook: 3,
                poll_only: 1,
                send: 5,
                ratio: None,
            },
        )]);
        let c = of(&counts, "p", Some("ig"));
        assert_eq!(c.messenger.ratio, Some(0.75));
        assert_eq!(c.instagram, Some(CoverageCounts::default()));
        assert_eq!(of(&counts, "q", None).messenger.ratio, None);
    }
}
