//! What every pagesync process shares: configuration from the environment,
//! telemetry, the operational HTTP endpoints, connections and graceful shutdown.

pub mod config;
pub mod connect;
pub mod ops;
pub mod shutdown;
mod socket;
pub mod telemetry;
pub mod watchdog;

pub use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: std::net::SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds a service's listener; port 0 picks a free port.
pub async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// An HTTP service that is bound but not yet serving: tests read its port
/// before it runs.
pub struct HttpService {
    name: &'static str,
    listener: tokio::net::TcpListener,
    router: axum::Router,
}

impl HttpService {
    /// Binds `addr` (port 0 picks a free port) for `router`.
    pub async fn bind(
        name: &'static str,
        addr: std::net::SocketAddr,
        router: axum::Router,
    ) -> Result<Self, BindError> {
        Ok(Self {
            name,
            listener: bind(addr).await?,
            router,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), "{} listening", self.name);
        serve(self.listener, self.router, shutdown).await
    }
}

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
