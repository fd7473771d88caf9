//! Ingest configuration, read from the environment (see docs/configuration.md).

use std::net::SocketAddr;
use std::time::Duration;

use pagesync_runtime::config::{NatsConfig, parse_duration, parse_secret};
use pagesync_runtime::telemetry::TelemetryConfig;
use secrecy::SecretString;

/// The Facebook webhook endpoint: verify, split, publish to JetStream.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "ingest", version)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "INGEST_ADDR", default_value = "0.0.0.0:5001")]
    pub ingest_addr: SocketAddr,
    /// Facebook app secret: the HMAC key of `X-Hub-Signature-256`.
    #[arg(long, env = "FACEBOOK_APP_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub facebook_app_secret: SecretString,
    /// The verify token typed into Facebook's webhook settings.
    #[arg(long, env = "FACEBOOK_VERIFY_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub facebook_verify_token: SecretString,
    /// Largest accepted webhook body; larger ones get 413.
    #[arg(long, env = "INGEST_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub ingest_max_body_bytes: usize,
    /// How long a delivery may wait for every JetStream acknowledgement before
    /// answering 503 (Facebook gives up after 5 s).
    #[arg(long, env = "INGEST_PUBLISH_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub ingest_publish_timeout: Duration,
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}
