//! Ingest configuration, read from the environment (see docs/configuration.md).

use std::net::SocketAddr;
use std::time::Duration;

use pagesync_runtime::config::{HttpConfig, NatsConfig, parse_duration, parse_secret};
use pagesync_runtime::telemetry::TelemetryConfig;
use secrecy::SecretString;

/// The whole-request deadline unless `HTTP_REQUEST_TIMEOUT` says otherwise: inside
/// the 5 s Facebook waits, with room for the body and the publish deadline.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(4);

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
    /// Bytes of bodies being received at once, across every delivery; a delivery that
    /// does not fit gets 503 at once. At least `INGEST_MAX_BODY_BYTES`.
    #[arg(long, env = "INGEST_BODY_BUDGET_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub ingest_body_budget_bytes: usize,
    /// How long a delivery's body may take to arrive before it is answered 408.
    #[arg(long, env = "INGEST_BODY_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub ingest_body_timeout: Duration,
    /// How long a delivery may wait for every JetStream acknowledgement before
    /// answering 503 (Facebook gives up after 5 s).
    #[arg(long, env = "INGEST_PUBLISH_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub ingest_publish_timeout: Duration,
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

/// A combination of values that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct InvalidConfig(String);

impl Config {
    /// The whole-request deadline.
    pub fn request_timeout(&self) -> Duration {
        self.http
            .http_request_timeout
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT)
    }

    /// Refuses limits that contradict each other: a maximal body that can never fit
    /// the budget, or body and publish deadlines that the whole request cannot hold.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.ingest_body_budget_bytes < self.ingest_max_body_bytes {
            return Err(InvalidConfig(
                "INGEST_BODY_BUDGET_BYTES must be at least INGEST_MAX_BODY_BYTES".into(),
            ));
        }
        if u32::try_from(self.ingest_max_body_bytes).is_err() {
            return Err(InvalidConfig(
                "INGEST_MAX_BODY_BYTES must be below 4 GiB".into(),
            ));
        }
        if self.ingest_body_timeout + self.ingest_publish_timeout > self.request_timeout() {
            return Err(InvalidConfig(
                "INGEST_BODY_TIMEOUT + INGEST_PUBLISH_TIMEOUT must not exceed HTTP_REQUEST_TIMEOUT"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Config {
        let mut args = vec![
            "ingest",
            "--facebook-app-secret",
            "s",
            "--facebook-verify-token",
            "t",
        ];
        args.extend_from_slice(extra);
        pagesync_runtime::config::parse_from(args).unwrap()
    }

    #[test]
    fn the_defaults_fit_inside_facebooks_five_seconds() {
        let config = parse(&[]);
        config.validate().unwrap();
        assert!(config.request_timeout() < Duration::from_secs(5));
    }

    #[test]
    fn contradictory_limits_are_refused_naming_the_variables() {
        let budget = parse(&["--ingest-body-budget-bytes", "1024"]).validate();
        assert!(
            budget
                .unwrap_err()
                .to_string()
                .contains("INGEST_BODY_BUDGET_BYTES")
        );
        let deadlines = parse(&["--http-request-timeout", "3s"]).validate();
        assert!(
            deadlines
                .unwrap_err()
                .to_string()
                .contains("HTTP_REQUEST_TIMEOUT")
        );
    }

    #[test]
    fn help_never_prints_a_secret_value() {
        use clap::CommandFactory;
        assert!(pagesync_runtime::config::secrets_shown_in_help(&Config::command()).is_empty());
    }
}
