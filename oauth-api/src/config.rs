//! oauth-api configuration, read from the environment (see docs/configuration.md).

use std::net::SocketAddr;
use std::time::Duration;

use pagesync_pagepoll::{GraphArgs, TokenKeys};
use pagesync_runtime::HttpUrl;
use pagesync_runtime::config::{
    DatabaseConfig, HttpConfig, NatsConfig, parse_duration, parse_secret,
};
use pagesync_runtime::telemetry::TelemetryConfig;
use secrecy::SecretString;

/// Facebook OAuth connect flow, sessions, encrypted page tokens and integrations.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "oauth-api", version)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "OAUTH_API_ADDR", default_value = "0.0.0.0:5000")]
    pub oauth_api_addr: SocketAddr,
    /// Where Facebook sends the browser back after login: this service's `/facebook/callback`.
    /// Cookies are `Secure` when it is https.
    #[arg(long, env = "FACEBOOK_REDIRECT_URI")]
    pub facebook_redirect_uri: HttpUrl,
    /// The ingest webhook URL: shown in integrations and posted to by the connect self-test.
    #[arg(
        long,
        env = "FACEBOOK_WEBHOOK_ADDRESS",
        default_value = "http://127.0.0.1:5001/facebook/webhook"
    )]
    pub facebook_webhook_address: HttpUrl,
    /// HMAC key of the OAuth `state` parameter.
    #[arg(long, env = "STATE_TOKEN_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub state_token_secret: SecretString,
    /// Facebook's login dialog.
    #[arg(
        long,
        env = "FACEBOOK_DIALOG_URL",
        default_value = "https://www.facebook.com/v26.0/dialog/oauth"
    )]
    pub facebook_dialog_url: HttpUrl,
    /// Bearer token of operators, who see every page; unset turns operator access off.
    #[arg(long, env = "OPERATOR_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub operator_token: Option<SecretString>,
    /// Send replies 24 h to 7 d after the customer's last message with the HUMAN_AGENT tag.
    #[arg(long, env = "MESSENGER_HUMAN_AGENT", default_value = "false", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub messenger_human_agent: bool,
    /// Comma-separated origins of a browser front end allowed to call the API
    /// (`https://crm.example.com`); unset or empty: no CORS headers.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "", hide_default_value = true, value_parser = crate::cors::parse_origins)]
    pub cors_allowed_origins: crate::cors::AllowedOrigins,
    /// How long a login session lasts after a completed connect.
    #[arg(long, env = "SESSION_TTL", default_value = "30d", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// How long a login that has not completed keeps its (pending) session: the
    /// state's 10 minutes plus a margin.
    #[arg(long, env = "PENDING_SESSION_TTL", default_value = "15m", value_parser = parse_duration)]
    pub pending_session_ttl: Duration,
    /// How often expired sessions are deleted.
    #[arg(long, env = "SESSION_PRUNE_INTERVAL", default_value = "1m", value_parser = parse_positive_duration)]
    pub session_prune_interval: Duration,
    /// How long the connect self-test waits for its test deliveries to be projected.
    #[arg(long, env = "SELF_TEST_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub self_test_timeout: Duration,
    /// Smallest spacing of Graph calls for one page (Facebook allows about 2 per second).
    #[arg(long, env = "GRAPH_PAGE_CALL_INTERVAL", default_value = "500ms", value_parser = parse_duration)]
    pub graph_page_call_interval: Duration,
    #[command(flatten)]
    pub graph: GraphArgs,
    #[command(flatten)]
    pub keys: TokenKeys,
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    /// What to do; without a command the API serves until stopped.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands of the `oauth-api` binary.
#[derive(clap::Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Serve the API until SIGINT/SIGTERM (the default).
    Serve,
    /// Re-encrypt every stored token under TOKEN_ENCRYPTION_KEY, then exit.
    ReencryptTokens,
}

impl Config {
    /// The listener's limits; unless `HTTP_REQUEST_TIMEOUT` is set, a request may last
    /// the connect self-test plus 40 s for its Graph calls (60 s by default).
    pub fn http_limits(&self) -> pagesync_runtime::HttpLimits {
        self.http
            .limits(self.self_test_timeout + Duration::from_secs(40))
    }

    /// Cookies get `Secure` when the browser reaches us over https.
    pub fn secure_cookies(&self) -> bool {
        self.facebook_redirect_uri.is_https()
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be longer than 0s".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [&str; 11] = [
        "oauth-api",
        "--facebook-app-id",
        "1",
        "--facebook-app-secret",
        "s",
        "--facebook-redirect-uri",
        "https://example.test/facebook/callback",
        "--state-token-secret",
        "st",
        "--token-encryption-key",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ];

    #[test]
    fn defaults_follow_the_contract() {
        let c: Config = pagesync_runtime::config::parse_from(REQUIRED).unwrap();
        assert_eq!(c.oauth_api_addr.to_string(), "0.0.0.0:5000");
        assert_eq!(
            c.facebook_webhook_address.as_str(),
            "http://127.0.0.1:5001/facebook/webhook"
        );
        assert_eq!(
            c.facebook_dialog_url.as_str(),
            "https://www.facebook.com/v26.0/dialog/oauth"
        );
        assert!(!c.messenger_human_agent);
        assert!(c.operator_token.is_none());
        assert!(c.secure_cookies());
        assert_eq!(c.session_ttl, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(c.pending_session_ttl, Duration::from_secs(15 * 60));
        assert_eq!(c.session_prune_interval, Duration::from_secs(60));
    }

    #[test]
    fn a_zero_prune_interval_is_refused() {
        let mut args = REQUIRED.to_vec();
        args.extend(["--session-prune-interval", "0s"]);
        let err = pagesync_runtime::config::parse_from::<Config, _, _>(args)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SESSION_PRUNE_INTERVAL"), "{err}");
    }

    #[test]
    fn a_missing_state_secret_is_named_on_one_line() {
        let args: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|a| *a != "--state-token-secret" && *a != "st")
            .collect();
        let err = pagesync_runtime::config::parse_from::<Config, _, _>(args)
            .unwrap_err()
            .to_string();
        assert!(err.contains("STATE_TOKEN_SECRET"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }

    #[test]
    fn a_malformed_encryption_key_is_refused_without_echoing_it() {
        let mut args = REQUIRED.to_vec();
        *args.last_mut().unwrap() = "c2hvcnQtc2VjcmV0";
        let err = pagesync_runtime::config::parse_from::<Config, _, _>(args)
            .unwrap_err()
            .to_string();
        assert!(err.contains("TOKEN_ENCRYPTION_KEY"), "{err}");
        assert!(!err.contains("c2hvcnQtc2VjcmV0"), "{err}");
    }

    #[test]
    fn human_agent_reads_booleans_from_the_environment_form() {
        let mut args = REQUIRED.to_vec();
        args.extend(["--messenger-human-agent", "true"]);
        let c: Config = pagesync_runtime::config::parse_from(args).unwrap();
        assert!(c.messenger_human_agent);
    }

    #[test]
    fn a_malformed_cors_origin_refuses_to_start_on_one_line() {
        let mut args = REQUIRED.to_vec();
        args.extend(["--cors-allowed-origins", "https://crm.example.com/inbox"]);
        let err = pagesync_runtime::config::parse_from::<Config, _, _>(args)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CORS_ALLOWED_ORIGINS"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let c: Config = pagesync_runtime::config::parse_from(REQUIRED).unwrap();
        assert!(c.cors_allowed_origins.is_empty());
    }

    #[test]
    fn help_never_prints_a_secret_value() {
        use clap::CommandFactory;
        assert!(pagesync_runtime::config::secrets_shown_in_help(&Config::command()).is_empty());
    }
}
