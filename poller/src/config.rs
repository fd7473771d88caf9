//! The poller's configuration, from the environment (contract §1).

use std::net::SocketAddr;
use std::time::Duration;

use pagesync_pagepoll::{GraphArgs, TokenKeys};
use pagesync_runtime::config::{DatabaseConfig, HttpConfig, NatsConfig, parse_duration};
use pagesync_runtime::telemetry::TelemetryConfig;
use pagesync_schema::PageId;

/// `poller`: polls the Graph API for every active integration and publishes events.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "poller", version)]
pub struct Config {
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    #[command(flatten)]
    pub http: HttpConfig,
    /// Address of `/health`, `/ready` and `/metrics` (port 0 picks one).
    #[arg(long, env = "POLLER_ADDR", default_value = "0.0.0.0:5003")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub graph: GraphArgs,
    #[command(flatten)]
    pub keys: TokenKeys,
    /// Time between two poll cycles (`24h`, `30m`).
    #[arg(long, env = "POLL_INTERVAL", default_value = "24h", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Pages polled at once.
    #[arg(long, env = "POLL_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub poll_concurrency: u16,
    /// How far before the checkpoint an incremental cycle reads again.
    #[arg(long, env = "POLL_OVERLAP", default_value = "10m", value_parser = parse_duration)]
    pub poll_overlap: Duration,
    /// The first cycle starts after a random delay up to this (spreads restarts).
    #[arg(long, env = "POLL_START_JITTER", default_value = "30s", value_parser = parse_duration)]
    pub poll_start_jitter: Duration,
    /// Smallest spacing of Graph calls for one page (Facebook allows about 2 per second).
    #[arg(long, env = "POLL_PAGE_CALL_INTERVAL", default_value = "500ms", value_parser = parse_duration)]
    pub poll_page_call_interval: Duration,
    /// Pause after a throttle answer that gives no estimate.
    #[arg(long, env = "GRAPH_THROTTLE_PAUSE", default_value = "60s", value_parser = parse_duration)]
    pub graph_throttle_pause: Duration,
    /// A throttle longer than this fails the page for this cycle instead of being waited out.
    #[arg(long, env = "GRAPH_MAX_THROTTLE_WAIT", default_value = "5m", value_parser = parse_duration)]
    pub graph_max_throttle_wait: Duration,
    /// Run one cycle and exit: 0 when every page succeeded, 1 otherwise.
    #[arg(long)]
    pub once: bool,
    /// With `--once`: poll only this page.
    #[arg(long)]
    pub page: Option<PageId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_never_prints_a_secret_value() {
        use clap::CommandFactory;
        assert_eq!(
            pagesync_runtime::config::secrets_shown_in_help(&Config::command()),
            Vec::<String>::new()
        );
    }
}
