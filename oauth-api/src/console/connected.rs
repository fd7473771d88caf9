//! The end of a Facebook login in a browser: each page connected and its
//! self-test results, in words (the same answer API clients get as JSON).

use askama::Template;
use axum::http::header::{ACCEPT, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Layout, html};
use crate::connect::ConnectAnswer;
use crate::error::ApiError;
use crate::selftest::{TestEntry, TestResult};
use crate::store::Caller;

#[derive(Template)]
#[template(path = "connected.html")]
struct ConnectedPage {
    layout: Layout,
    pages: Vec<PageResult>,
}

struct PageResult {
    page_id: String,
    name: Option<String>,
    tests: Vec<TestLine>,
}

struct TestLine {
    label: &'static str,
    ok: bool,
    outcome: String,
}

/// Whether the callback was opened by a browser (which asks for HTML) rather than
/// an API client (which asks for JSON, `*/*` or nothing).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().starts_with("text/html")))
}

fn line(label: &'static str, entry: &TestEntry) -> TestLine {
    let (ok, outcome) = match &entry.result {
        TestResult::Success => (true, "passed".to_owned()),
        TestResult::Error { message } => (false, format!("failed: {message}")),
    };
    TestLine { label, ok, outcome }
}

fn label(webhook: bool, kind: &str) -> &'static str {
    match (webhook, kind) {
        (true, "metadata") => "Webhook test: page change",
        (true, _) => "Webhook test: message",
        (false, "metadata") => "Polling test: page",
        (false, _) => "Polling test: conversations",
    }
}

/// The connect answer as a page, with the new session's cookie.
pub fn page(answer: &ConnectAnswer, cookie: HeaderValue) -> Result<Response, ApiError> {
    let pages = answer
        .pages
        .data
        .iter()
        .map(|p| {
            let page_id = p["id"].as_str().unwrap_or_default().to_owned();
            let tests = [(true, &answer.webhook_test), (false, &answer.polling_test)]
                .into_iter()
                .flat_map(|(webhook, entries)| {
                    entries
                        .iter()
                        .filter(|e| e.page_id == page_id)
                        .map(move |e| line(label(webhook, e.kind), e))
                })
                .collect();
            PageResult {
                name: p["name"].as_str().map(str::to_owned),
                page_id,
                tests,
            }
        })
        .collect();
    let page = ConnectedPage {
        layout: Layout::for_caller(Some(Caller::User(answer.user_uuid)), "settings"),
        pages,
    };
    Ok(([(SET_COOKIE, cookie)], html(StatusCode::OK, &page)?).into_response())
}
