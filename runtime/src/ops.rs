//! `/health`, `/ready` and `/metrics`, served by every process.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Resolves to `Err(reason)` while a dependency does not answer.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Err while the NATS connection is down.
pub fn nats_connected(client: &async_nats::Client) -> Result<(), String> {
    match client.connection_state() {
        async_nats::connection::State::Connected => Ok(()),
        _ => Err("NATS is not connected".to_owned()),
    }
}

/// Err unless Postgres hands out a connection and answers `SELECT 1` within 2 s.
/// The bound covers the query too: a connection that does not answer in time is
/// discarded rather than left for the next caller.
pub async fn postgres_answers(pool: &deadpool_postgres::Pool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let late = || "Postgres did not answer in time".to_owned();
    let conn = tokio::time::timeout_at(deadline, pool.get())
        .await
        .map_err(|_| late())?
        .map_err(|_| "Postgres is unreachable".to_owned())?;
    match tokio::time::timeout_at(deadline, conn.simple_query("SELECT 1")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err("Postgres does not answer".to_owned()),
        Err(_) => {
            crate::connect::discard(conn);
            Err(late())
        }
    }
}

/// Readiness of a process that uses NATS and Postgres.
pub fn nats_and_postgres(client: async_nats::Client, pool: deadpool_postgres::Pool) -> ReadyCheck {
    Arc::new(move || {
        let (client, pool) = (client.clone(), pool.clone());
        Box::pin(async move {
            nats_connected(&client)?;
            postgres_answers(&pool).await
        })
    })
}

/// The process-wide Prometheus recorder. The `metrics` facade is global by design,
/// so every app in a process (several in tests) shares one registry.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency_buckets = [
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency_buckets)
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("the recorder is installed once, here")
        })
        .clone()
}

#[derive(Clone)]
struct OpsState {
    ready: ReadyCheck,
    metrics: PrometheusHandle,
}

/// A router with the three operational endpoints; merge it into the service's router.
pub fn router(ready: ReadyCheck) -> Router {
    let state = OpsState {
        ready,
        metrics: metrics_handle(),
    };
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(readiness))
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readiness(State(state): State<OpsState>) -> Response {
    match (state.ready)().await {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "reason": reason})),
        )
            .into_response(),
    }
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
