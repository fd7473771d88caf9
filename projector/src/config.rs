//! The projector's configuration, from the environment and the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pagesync_runtime::config::{DatabaseConfig, HttpConfig, NatsConfig, parse_duration};
use pagesync_runtime::telemetry::TelemetryConfig;

use crate::dead_letters::DeadLetterCommand;

/// `projector`: applies every event of the stream to Postgres and writes the files.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "projector", version)]
pub struct Config {
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    #[command(flatten)]
    pub http: HttpConfig,
    /// Address of /health, /ready and /metrics (port 0 picks a free port).
    #[arg(long, env = "PROJECTOR_ADDR", default_value = "0.0.0.0:5002")]
    pub projector_addr: SocketAddr,
    /// Folder the conversation and page files are written under.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Name of the durable JetStream consumer.
    #[arg(long, env = "PROJECTOR_CONSUMER", default_value = "projector", value_parser = parse_consumer)]
    pub projector_consumer: String,
    /// Largest number of events fetched and applied in one transaction.
    #[arg(long, env = "PROJECTOR_BATCH_SIZE", default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub projector_batch_size: u32,
    /// How long an idle fetch waits for the next event.
    #[arg(long, env = "PROJECTOR_FETCH_EXPIRY", default_value = "1s", value_parser = parse_duration)]
    pub projector_fetch_expiry: Duration,
    /// Most events delivered but not yet acknowledged (at least the batch size); while a
    /// backlog lasts, files are written once per up to half this many events.
    #[arg(long, env = "PROJECTOR_MAX_ACK_PENDING", default_value_t = 100_000)]
    pub projector_max_ack_pending: i64,
    /// How long JetStream waits for an acknowledgement before redelivering.
    #[arg(long, env = "PROJECTOR_ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub projector_ack_wait: Duration,
    /// Longest a batch's transaction (and a file write's) may take; a batch that
    /// takes longer is handed back and its connection discarded. Far above a
    /// legitimate batch (5,000 events apply in ~0.1 s, a rebuild's 20,000 in under
    /// 1 s) and below the ack wait, so a stuck batch is handed back before JetStream
    /// redelivers it on its own.
    #[arg(long, env = "PROJECTOR_BATCH_DEADLINE", default_value = "20s", value_parser = parse_duration)]
    pub projector_batch_deadline: Duration,
    /// How often page ownership is compared with where the files are, to move them.
    #[arg(long, env = "PROJECTOR_OWNER_CHECK_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub projector_owner_check_interval: Duration,
    /// Apply until the stream is empty, then exit (same as the `drain` command).
    #[arg(long)]
    pub drain: bool,
    /// What to do; without a command the projector follows the stream until stopped.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The projector's commands.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Follow the stream until SIGINT/SIGTERM (the default).
    Run,
    /// Apply every pending event, then exit 0.
    Drain,
    /// Empty the projection (tables and files) and replay the stream from sequence 1.
    Rebuild,
    /// Apply the dead letters again (after fixing their cause), then exit 0; the
    /// same as `dead-letters retry`.
    RetryDeadLetters,
    /// List, show, retry or discard the dead letters (docs/runbook.md).
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Apply the pending Postgres migrations, then exit 0 (needs no NATS): the one-shot
    /// step docker compose runs before the services start.
    Migrate,
}

impl Config {
    /// The mode the command line asks for.
    pub fn mode(&self) -> Command {
        match &self.command {
            Some(c) => c.clone(),
            None if self.drain => Command::Drain,
            None => Command::Run,
        }
    }
}

fn parse_consumer(s: &str) -> Result<String, String> {
    if pagesync_schema::ids::is_safe_token(s) {
        Ok(s.to_owned())
    } else {
        Err("must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let c: Config =
            pagesync_runtime::config::parse_from::<Config, _, _>(["projector"]).unwrap();
        assert_eq!(c.projector_addr.to_string(), "0.0.0.0:5002");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.projector_consumer, "projector");
        assert_eq!(c.mode(), Command::Run);
    }

    #[test]
    fn drain_is_a_flag_and_a_command() {
        let flag: Config =
            pagesync_runtime::config::parse_from::<Config, _, _>(["projector", "--drain"]).unwrap();
        assert_eq!(flag.mode(), Command::Drain);
        let cmd: Config =
            pagesync_runtime::config::parse_from::<Config, _, _>(["projector", "rebuild"]).unwrap();
        assert_eq!(cmd.mode(), Command::Rebuild);
        let retry: Config = pagesync_runtime::config::parse_from::<Config, _, _>([
            "projector",
            "retry-dead-letters",
        ])
        .unwrap();
        assert_eq!(retry.mode(), Command::RetryDeadLetters);
        let migrate: Config =
            pagesync_runtime::config::parse_from::<Config, _, _>(["projector", "migrate"]).unwrap();
        assert_eq!(migrate.mode(), Command::Migrate);
        let discard: Config = pagesync_runtime::config::parse_from::<Config, _, _>([
            "projector",
            "dead-letters",
            "discard",
            "4",
            "9",
        ])
        .unwrap();
        assert_eq!(
            discard.mode(),
            Command::DeadLetters(DeadLetterCommand::Discard {
                stream_seqs: vec![4, 9]
            })
        );
    }

    #[test]
    fn a_bad_consumer_name_is_named_on_one_line() {
        let err = pagesync_runtime::config::parse_from::<Config, _, _>([
            "projector",
            "--projector-consumer",
            "a.b",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("PROJECTOR_CONSUMER"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }

    #[test]
    fn help_never_prints_a_secret_value() {
        use clap::CommandFactory;
        assert!(pagesync_runtime::config::secrets_shown_in_help(&Config::command()).is_empty());
    }
}
