//! The HTTP side: every request goes through [`handle`], which applies latency and
//! faults, dispatches to the Graph area in `routes`, and logs what it answered.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use axum::routing::any;

use crate::faults::fault_response;
use crate::model::Shared;
use crate::query::{form_param, parse_query};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub method: Method,
    /// Without the version segment: `/101/conversations`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: String,
    /// The status the fake answered.
    pub status: u16,
}

impl LoggedRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A request as the routes see it: the path without the version segment.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Req {
    pub(crate) fn param(&self, k: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .or_else(|| form_param(&self.body, k))
    }
}

/// Any version segment, a node, and an optional edge.
pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/{version}/{node}", any(handle_node))
        .route("/{version}/{node}/{edge}", any(handle_edge))
        .with_state(state)
}

async fn handle_node(
    State(state): State<Shared>,
    method: Method,
    Path((_v, node)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    handle(state, method, format!("/{node}"), q, body).await
}

async fn handle_edge(
    State(state): State<Shared>,
    method: Method,
    Path((_v, node, edge)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    handle(state, method, format!("/{node}/{edge}"), q, body).await
}

async fn handle(
    state: Shared,
    method: Method,
    path: String,
    q: Option<String>,
    body: Bytes,
) -> Response {
    let latency = {
        let mut s = state.lock().expect("fake state lock");
        // Counted on arrival: a caller that gives up during the latency still sent it.
        s.arrivals.push((method.clone(), path.clone()));
        s.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let req = Req {
        method,
        path,
        query: q.as_deref().map(parse_query).unwrap_or_default(),
        body,
    };
    let mut s = state.lock().expect("fake state lock");
    let mut resp = match s.take_fault(&req) {
        Some(fault) => fault_response(&fault),
        None => s.route(&req),
    };
    if let Some(p) = s.app_usage_percent {
        let v = format!(r#"{{"call_count":{p},"total_time":{p},"total_cputime":{p}}}"#);
        resp.headers_mut().insert(
            "x-app-usage",
            HeaderValue::from_str(&v).expect("ascii header"),
        );
    }
    s.log.push(LoggedRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status: resp.status().as_u16(),
    });
    resp
}
