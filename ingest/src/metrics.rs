//! The ingest metrics, registered once at start so the request path only
//! increments handles instead of looking names and labels up per call.

use metrics::{Counter, Histogram, counter, histogram};
use pagesync_schema::EventType;

/// Every `outcome` label of `pagesync_ingest_deliveries_total`.
pub const OUTCOMES: [&str; 10] = [
    "accepted",
    "bad_request",
    "forbidden",
    "missing_signature",
    "bad_signature",
    "too_large",
    "item_too_large",
    "body_timeout",
    "over_budget",
    "unavailable",
];

pub struct IngestMetrics {
    deliveries: [Counter; OUTCOMES.len()],
    events: [Counter; EventType::ALL.len()],
    pub duplicates: Counter,
    pub publish_seconds: Histogram,
}

impl IngestMetrics {
    /// Registers every series. Call after the recorder is installed
    /// (`pagesync_runtime::ops::metrics_handle`), or the handles are no-ops.
    pub fn register() -> Self {
        Self {
            deliveries: OUTCOMES
                .map(|o| counter!("pagesync_ingest_deliveries_total", "outcome" => o)),
            events: EventType::ALL
                .map(|t| counter!("pagesync_ingest_events_total", "type" => t.as_str())),
            duplicates: counter!("pagesync_ingest_duplicates_total"),
            publish_seconds: histogram!("pagesync_ingest_publish_seconds"),
        }
    }

    pub fn delivery(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.deliveries[i].increment(1);
        }
    }

    pub fn event(&self, kind: EventType) {
        if let Some(i) = EventType::ALL.iter().position(|t| *t == kind) {
            self.events[i].increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_outcome_has_a_series() {
        use crate::error::IngestError;
        use pagesync_schema::signature::SignatureError;
        let errors = [
            IngestError::MissingParameter("hub.mode"),
            IngestError::VerificationRefused,
            IngestError::Signature(SignatureError::Missing),
            IngestError::Signature(SignatureError::Mismatch),
            IngestError::TooLarge(1),
            IngestError::ItemTooLarge { size: 2, max: 1 },
            IngestError::BadBody,
            IngestError::BodyTimeout(std::time::Duration::from_secs(1)),
            IngestError::OverBudget,
            IngestError::Unavailable(None),
        ];
        for e in errors {
            assert!(OUTCOMES.contains(&e.outcome()), "{}", e.outcome());
        }
    }
}
