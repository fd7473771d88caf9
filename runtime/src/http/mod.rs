//! Every service's HTTP listener: its own accept loop over hyper, so that slow or idle
//! clients cannot hold the process. Headers must arrive within a deadline, each request
//! has one, connections and requests in progress are capped, and what does not fit is
//! answered 503 at once (docs/configuration.md, "HTTP limits").

mod connections;
mod stack;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpConfig;
use connections::{Connections, Slot};
pub use stack::overloaded;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds a service's listener; port 0 picks a free port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// The whole-request deadline of a listener that serves only `/health`, `/ready`
/// and `/metrics` (projector, poller).
pub const OPS_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one listener allows (see [`HttpConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_requests: usize,
}

impl HttpConfig {
    /// The limits, with `default_request_timeout` where `HTTP_REQUEST_TIMEOUT` is unset.
    pub fn limits(&self, default_request_timeout: Duration) -> HttpLimits {
        HttpLimits {
            header_timeout: self.http_header_timeout,
            request_timeout: self.http_request_timeout.unwrap_or(default_request_timeout),
            max_connections: self.http_max_connections as usize,
            max_requests: self.http_max_requests as usize,
        }
    }
}

/// An HTTP service that is bound but not yet serving: tests read its port
/// before it runs.
pub struct HttpService {
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    limits: HttpLimits,
}

impl HttpService {
    /// Binds `addr` (port 0 picks a free port) for `router`.
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        router: axum::Router,
        limits: HttpLimits,
    ) -> Result<Self, BindError> {
        Ok(Self::new(name, bind(addr).await?, router, limits))
    }

    /// Serves `router` on an already bound listener.
    pub fn new(
        name: &'static str,
        listener: TcpListener,
        router: axum::Router,
        limits: HttpLimits,
    ) -> Self {
        Self {
            name,
            listener,
            router,
            limits,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), "{} listening", self.name);
        serve(self.name, self.listener, self.router, self.limits, shutdown).await
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` is cancelled, then
/// closes idle connections and lets in-flight requests finish.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let server = Server {
        name,
        service: stack::service(app, &limits, name),
        connections: Arc::new(Connections::new(limits.max_connections, name)),
        http1: http1_builder(&limits),
        tasks: TaskTracker::new(),
        shutdown,
    };
    server.accept_loop(listener).await;
    server.tasks.close();
    server.tasks.wait().await;
    Ok(())
}

/// hyper's header timer starts when the connection waits for a request, so it bounds
/// both a slow head and an idle keep-alive connection.
fn http1_builder(limits: &HttpLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
}

struct Server {
    name: &'static str,
    service: stack::AppService,
    connections: Arc<Connections>,
    http1: http1::Builder,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Server {
    async fn accept_loop(&self, listener: TcpListener) {
        // Held so that when descriptors run out one can be freed to refuse a client.
        let mut reserve = spare_descriptor();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _peer)) => self.admit(stream),
                Err(e) if is_per_connection(&e) => {
                    tracing::debug!(error = %e, "a connection failed before it was accepted");
                }
                Err(e) if is_out_of_descriptors(&e) => {
                    self.out_of_descriptors(&listener, &mut reserve).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "{}: accept failed; retrying in 100 ms", self.name);
                    self.pause(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn admit(&self, stream: TcpStream) {
        match self.connections.admit(&self.shutdown) {
            Some(slot) => {
                let service = self.service.clone();
                let http1 = self.http1.clone();
                self.tasks
                    .spawn(serve_connection(stream, service, http1, slot));
            }
            None => self.shed(stream),
        }
        self.connections.record();
    }

    /// Every connection is in a request: refuse this one now rather than queue it.
    fn shed(&self, stream: TcpStream) {
        metrics::counter!("pagesync_http_connections_shed_total", "service" => self.name)
            .increment(1);
        // A fresh socket's send buffer is empty, so the answer fits without waiting.
        if let Err(e) = stream.try_write(stack::SHED_RESPONSE) {
            tracing::debug!(error = %e, "could not answer a shed connection; closing it");
        }
    }

    /// EMFILE/ENFILE: close the longest-idle connection, or when every one is in a
    /// request, spend the spare descriptor to refuse the waiting client with a 503, so
    /// the backlog never hangs and the loop never spins.
    async fn out_of_descriptors(
        &self,
        listener: &TcpListener,
        reserve: &mut Option<std::fs::File>,
    ) {
        if self.connections.evict_idlest() {
            self.pause(Duration::from_millis(5)).await;
            return;
        }
        tracing::warn!(
            "{}: out of file descriptors with every connection busy; refusing a client",
            self.name
        );
        if reserve.take().is_some() {
            if let Ok(Ok((stream, _))) =
                tokio::time::timeout(Duration::from_millis(10), listener.accept()).await
            {
                self.shed(stream);
            }
            *reserve = spare_descriptor();
        }
        self.pause(Duration::from_millis(50)).await;
    }

    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = tokio::time::sleep(d) => {}
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    service: stack::AppService,
    http1: http1::Builder,
    slot: Slot,
) {
    let conn = http1.serve_connection(TokioIo::new(stream), stack::hyper_service(service, &slot));
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = slot.stopped() => {
            // Idle connections close at once; one in a request finishes it first.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Timeouts, resets and malformed requests: the client's doing, not ours.
        tracing::debug!(error = %e, "connection closed with an error");
    }
}

fn spare_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null")
        .inspect_err(|e| tracing::warn!(error = %e, "cannot hold a spare file descriptor"))
        .ok()
}

fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted
    )
}

fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
