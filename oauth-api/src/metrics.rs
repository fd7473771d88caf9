//! `pagesync_oauth_api_*` metrics. Labels are route templates and outcomes, never ids or tokens.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Counts requests and their latency by route template and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("pagesync_oauth_api_requests_total",
        "method" => method.clone(), "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("pagesync_oauth_api_request_duration_seconds",
        "method" => method, "route" => route)
    .record(started.elapsed().as_secs_f64());
    resp
}

pub fn state_rejected(reason: &'static str) {
    metrics::counter!("pagesync_oauth_api_state_rejections_total", "reason" => reason).increment(1);
}

pub fn connect(outcome: &'static str, pages: usize) {
    metrics::counter!("pagesync_oauth_api_connects_total", "outcome" => outcome).increment(1);
    metrics::counter!("pagesync_oauth_api_pages_connected_total").increment(pages as u64);
}

pub fn self_test(test: &'static str, kind: &'static str, success: bool) {
    let result = if success { "success" } else { "error" };
    metrics::counter!("pagesync_oauth_api_self_tests_total",
        "test" => test, "type" => kind, "result" => result)
    .increment(1);
}

pub fn subscription(outcome: &'static str) {
    metrics::counter!("pagesync_oauth_api_subscriptions_total", "outcome" => outcome).increment(1);
}

pub fn sessions_pruned(authenticated: u64, pending: u64) {
    metrics::counter!("pagesync_oauth_api_sessions_pruned_total", "kind" => "authenticated")
        .increment(authenticated);
    metrics::counter!("pagesync_oauth_api_sessions_pruned_total", "kind" => "pending")
        .increment(pending);
}

/// A reply's outcome: `sent`, or the error code it was answered with.
pub fn reply(outcome: &'static str) {
    metrics::counter!("pagesync_oauth_api_replies_total", "outcome" => outcome).increment(1);
}
