//! `projector`: the durable JetStream consumer that applies every event to
//! Postgres exactly once and writes the conversation and page files (contract §4).

pub mod backoff;
pub mod batch;
pub mod config;
pub mod consumer;
pub mod dead_letters;
pub mod decode;
pub mod error;
pub mod files;
pub mod lag;
pub mod metrics;
mod parsed;
pub mod rebuild;
pub mod retry;
pub mod stall;
pub mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pagesync_runtime::CancellationToken;
use pagesync_runtime::config::DatabaseConfig;
use pagesync_runtime::connect::{self, ConnectError};
use tokio::net::TcpListener;

pub use config::{Command, Config};
pub use consumer::DrainReport;
pub use error::RunError;
pub use rebuild::RebuildReport;
pub use retry::RetryReport;

use batch::Applier;
use consumer::{ConsumerSettings, Until, Worker};
use files::Files;
use stall::Stall;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Applies the pending Postgres migrations (under the schema's advisory lock) and
/// returns: `projector migrate`, which needs no NATS.
pub async fn migrate(config: &DatabaseConfig) -> Result<(), ConnectError> {
    connect::postgres(config).await?.close();
    Ok(())
}

/// A built projector: connected to NATS and Postgres, consumer bound, listener bound.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    limits: pagesync_runtime::HttpLimits,
    worker: Worker,
    stream: async_nats::jetstream::stream::Stream,
}

impl App {
    /// Connects to NATS (stream and durable consumer created when missing) and to
    /// Postgres (migrated), and binds the ops listener. Fails fast when either is away.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let nats =
            connect::nats(&config.nats, "pagesync-projector", Duration::from_secs(10)).await?;
        let pool = connect::postgres(&config.database).await?;
        let settings = ConsumerSettings {
            name: config.projector_consumer.clone(),
            filter_subject: config.nats.nats_subject_prefix.wildcard(),
            batch_size: config.projector_batch_size as usize,
            fetch_expiry: config.projector_fetch_expiry,
            max_ack_pending: config.projector_max_ack_pending,
            ack_wait: config.projector_ack_wait,
            owner_check_interval: config.projector_owner_check_interval,
        };
        let consumer = consumer::durable(&nats.stream, &settings).await?;
        let addr = config.projector_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BuildError::Bind { addr, source })?;
        let stall = Arc::new(Stall::new(config.nats.nats_stream.to_string()));
        let router = pagesync_runtime::ops::router(readiness(
            pagesync_runtime::ops::nats_and_postgres(nats.client.clone(), pool.clone()),
            stall.clone(),
        ));
        let worker = Worker {
            consumer,
            applier: Applier::new(pool, config.projector_batch_deadline),
            files: Files::new(&config.data_dir),
            settings,
            stream_name: config.nats.nats_stream.to_string(),
            stall,
        };
        Ok(Self {
            listener,
            router,
            limits: config
                .http
                .limits(pagesync_runtime::http::OPS_REQUEST_TIMEOUT),
            worker,
            stream: nats.stream,
        })
    }

    /// The bound ops address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// Serves the ops endpoints and applies events until `shutdown` is cancelled;
    /// the batch in hand is finished and acknowledged first.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), RunError> {
        self.run(shutdown, Until::Stopped).await.map(|_| ())
    }

    /// Applies events until nothing is pending, then returns (`projector drain`).
    pub async fn drain(self, shutdown: CancellationToken) -> Result<DrainReport, RunError> {
        self.run(shutdown, Until::Drained).await
    }

    /// Empties the projection and replays the stream from sequence 1; `shutdown`
    /// stops it early ([`RunError::Cancelled`]).
    pub async fn rebuild(mut self, shutdown: CancellationToken) -> Result<RebuildReport, RunError> {
        rebuild::rebuild(
            &mut self.stream,
            &self.worker.applier.replaying(),
            &self.worker.files,
            &self.worker.settings,
            &shutdown,
        )
        .await
    }

    /// Applies the dead letters again; those that apply now leave the table.
    /// `shutdown` stops it between chunks, with what was done so far.
    pub async fn retry_dead_letters(
        self,
        shutdown: CancellationToken,
    ) -> Result<RetryReport, RunError> {
        self.retry_dead_letters_of(&[], shutdown).await
    }

    /// Applies the dead letters of these stream sequences again (all when empty).
    pub async fn retry_dead_letters_of(
        self,
        stream_seqs: &[i64],
        shutdown: CancellationToken,
    ) -> Result<RetryReport, RunError> {
        let (stream, worker) = (&self.stream, &self.worker);
        retry::retry_dead_letters(
            stream,
            &worker.applier,
            &worker.files,
            stream_seqs,
            &shutdown,
        )
        .await
    }

    async fn run(self, shutdown: CancellationToken, until: Until) -> Result<DrainReport, RunError> {
        let ops_stop = shutdown.child_token();
        let server = tokio::spawn(pagesync_runtime::serve(
            "projector",
            self.listener,
            self.router,
            self.limits,
            ops_stop.clone(),
        ));
        tokio::spawn(lag::watch(
            self.worker.consumer.clone(),
            self.worker.stream_name.clone(),
            lag::INTERVAL,
            ops_stop.clone(),
        ));
        tracing::info!(consumer = %self.worker.settings.name, ?until, "projector running");
        let result = self.worker.run(shutdown, until).await;
        ops_stop.cancel();
        match server.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "ops server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "ops server task failed"),
            Ok(Ok(())) => {}
        }
        result
    }
}

/// Ready while NATS and Postgres answer and the consumer loop is not stalled (a
/// fresh connection answering says nothing of the ones batches are stuck on).
fn readiness(
    dependencies: pagesync_runtime::ops::ReadyCheck,
    stall: Arc<Stall>,
) -> pagesync_runtime::ops::ReadyCheck {
    Arc::new(move || {
        let (dependencies, stall) = (dependencies.clone(), stall.clone());
        Box::pin(async move {
            stall.check()?;
            dependencies().await
        })
    })
}
