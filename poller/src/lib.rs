//! The poller (contract §5): reads every active integration's page from the Graph
//! API and publishes `page_snapshot`, `message` and `message_echo` events built by
//! `schema`, so the projector collapses them with the webhook's copies.

pub mod config;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pagesync_graph::{GraphClient, GraphConfig, RetryPolicy};
use pagesync_runtime::connect::{self, ConnectError};
use pagesync_runtime::{CancellationToken, HttpService, ops};
use pagesync_schema::{PageId, Publisher};
use rand::Rng;

pub use config::Config;
// Polling one page is a library oauth-api's self-test shares (pagesync-pagepoll).
pub use pagesync_pagepoll::{PageOutcome, PagePoller, events, poll, store};

/// How long JetStream may take to acknowledge a publish.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cannot build the Graph API client")]
    Graph(#[from] pagesync_graph::GraphError),
    #[error(transparent)]
    Bind(#[from] pagesync_runtime::BindError),
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read integrations: {0}")]
    Store(#[from] store::StoreError),
    #[error("ops server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// The result of one cycle, page by page.
#[derive(Debug, Default)]
pub struct CycleReport {
    pub pages: Vec<(PageId, PageOutcome)>,
}

impl CycleReport {
    /// True when every polled page succeeded (and, for `--page`, the page was found).
    pub fn all_succeeded(&self) -> bool {
        self.pages.iter().all(|(_, o)| o.is_success())
    }

    pub fn outcome(&self, page: &str) -> Option<&PageOutcome> {
        self.pages
            .iter()
            .find(|(p, _)| p.as_str() == page)
            .map(|(_, o)| o)
    }

    /// Events JetStream stored (not counting duplicates) over the cycle.
    pub fn stored(&self) -> usize {
        self.pages
            .iter()
            .map(|(_, o)| match o {
                PageOutcome::Success { stored, .. } => *stored,
                _ => 0,
            })
            .sum()
    }
}

/// A connected poller, ready to run.
pub struct App {
    config: Config,
    poller: Arc<PagePoller>,
    /// `/health`, `/ready` and `/metrics`, bound.
    ops: HttpService,
}

impl App {
    /// Connects to NATS (stream created when missing) and Postgres (migrated), and binds the ops port.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let nats = connect::nats(&config.nats, "pagesync-poller", ACK_TIMEOUT).await?;
        let pool = connect::postgres(&config.database).await?;
        let graph = GraphClient::new(graph_config(&config))?;
        let router = ops::router(ops::nats_and_postgres(nats.client, pool.clone()));
        let limits = config
            .http
            .limits(pagesync_runtime::http::OPS_REQUEST_TIMEOUT);
        let ops = HttpService::bind("poller", config.addr, router, limits).await?;
        let publisher = Publisher::new(nats.js.clone(), config.nats.nats_subject_prefix.clone());
        let mut poller = PagePoller::new(
            graph,
            publisher,
            pool,
            config.keys.cipher(),
            config.graph.facebook_app_id.clone(),
        );
        poller.overlap = config.poll_overlap;
        Ok(Self {
            config,
            poller: Arc::new(poller),
            ops,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.ops.local_addr()
    }

    pub fn poller(&self) -> &PagePoller {
        &self.poller
    }

    /// One cycle over every pollable integration (or only `page`), `POLL_CONCURRENCY` at a time.
    pub async fn run_cycle(&self, page: Option<&PageId>) -> Result<CycleReport, RunError> {
        cycle(&self.poller, self.config.poll_concurrency, page).await
    }

    /// The daemon: serves the ops endpoints, runs a first cycle after a random delay
    /// up to `POLL_START_JITTER`, then one every `POLL_INTERVAL`, until `shutdown`.
    /// A cycle in progress at shutdown is abandoned between calls: its checkpoints
    /// were not advanced, so the next start reads those pages again.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let Self {
            config,
            poller,
            ops,
        } = self;
        let server = tokio::spawn(ops.run_until_stopped(shutdown.clone()));
        let jitter = config.poll_start_jitter;
        let mut delay = if jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::rng().random_range(Duration::ZERO..=jitter)
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = cycle(&poller, config.poll_concurrency, None) => {
                    if let Err(e) = r {
                        tracing::error!(error = %e, "poll cycle could not run");
                    }
                }
            }
            delay = config.poll_interval;
        }
        server.await.map_err(std::io::Error::other)??;
        Ok(())
    }
}

/// Polls every pollable integration (or only `page`), `concurrency` pages at a time:
/// the one path for `--once` and the daemon.
async fn cycle(
    poller: &Arc<PagePoller>,
    concurrency: u16,
    page: Option<&PageId>,
) -> Result<CycleReport, RunError> {
    let integrations = store::pollable(&poller.pool, page).await?;
    let mut report = CycleReport::default();
    if let Some(p) = page
        && integrations.is_empty()
    {
        tracing::error!(page_id = %p, "page is not an active integration (missing, inactive or needs_reauth)");
        report.pages.push((
            p.clone(),
            PageOutcome::Failed("not an active integration".into()),
        ));
        return Ok(report);
    }
    let started = std::time::Instant::now();
    report.pages = futures::stream::iter(integrations)
        .map(|i| {
            let poller = poller.clone();
            async move {
                let outcome = poller.poll_page(&i).await;
                (i.page_id, outcome)
            }
        })
        .buffer_unordered(usize::from(concurrency))
        .collect()
        .await;
    tracing::info!(
        pages = report.pages.len(),
        failed = report.pages.iter().filter(|(_, o)| !o.is_success()).count(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "poll cycle finished"
    );
    Ok(report)
}

/// The poller's Graph client: a cycle may wait out throttles up to `GRAPH_MAX_THROTTLE_WAIT`.
fn graph_config(config: &Config) -> GraphConfig {
    let retry = RetryPolicy {
        max_delay: Duration::from_secs(30),
        throttle_pause: config.graph_throttle_pause,
        max_throttle_wait: config.graph_max_throttle_wait,
        ..RetryPolicy::default()
    };
    config
        .graph
        .client_config("pagesync_poller", config.poll_page_call_interval, retry)
}
