//! What every pagesync process shares: configuration from the environment,
//! telemetry, the operational HTTP endpoints, connections and graceful shutdown.

pub mod config;
pub mod connect;
pub mod ops;
pub mod shutdown;
pub mod telemetry;

pub use tokio_util::sync::CancellationToken;

/// Binds `addr` (port 0 allowed) and serves `app` until `shutdown` is cancelled,
/// then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
