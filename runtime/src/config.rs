//! Typed configuration from the environment, with one-line errors that name the variable.

use std::process::ExitCode;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};
use pagesync_schema::{StreamName, StreamSpec, SubjectPrefix};
use secrecy::SecretString;

/// Parses `T` from the process environment (after loading `.env` from the working
/// directory when present) and the command line. Help and version requests print and exit.
pub fn load<T: CommandFactory + FromArgMatches>() -> Result<T, ConfigError> {
    load_dotenv()?;
    parse_from::<T, _, _>(std::env::args_os())
}

/// Loads `.env` when present. A malformed file is an error, not silently skipped;
/// the message gives the position only, since the line may hold a secret.
fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(dotenvy::Error::LineParse(_, index)) => Err(ConfigError(format!(
            ".env cannot be parsed near character {index}"
        ))),
        Err(dotenvy::Error::Io(e)) => Err(ConfigError(format!(".env cannot be read: {e}"))),
        Err(_) => Err(ConfigError(".env cannot be loaded".to_owned())),
    }
}

/// [`load`] for a service's `main`: on error prints `<service>: <one line>` to
/// stderr and gives the exit status to return (2), so `main` returns rather than
/// exits and every destructor (the telemetry guard's flush) runs.
pub fn load_for<T: CommandFactory + FromArgMatches>(service: &str) -> Result<T, ExitCode> {
    load().map_err(|e| refuse(service, &e))
}

/// Reports a configuration error of `service` on stderr: the exit status to return.
pub fn refuse(service: &str, e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{service}: {e}");
    ExitCode::from(2)
}

/// Like [`load_for`], exiting at once. Kept for mains not yet returning an
/// `ExitCode` (the projector's); prefer [`load_for`].
pub fn load_or_exit<T: CommandFactory + FromArgMatches>(service: &str) -> T {
    load().unwrap_or_else(|e| {
        eprintln!("{service}: {e}");
        std::process::exit(2)
    })
}

/// Like [`load`] without `.env`, for tests and tools.
pub fn parse_from<T, I, A>(args: I) -> Result<T, ConfigError>
where
    T: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = T::command();
    let parsed = cmd
        .try_get_matches_from_mut(args)
        .and_then(|m| T::from_arg_matches(&m));
    parsed.map_err(|err| match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => err.exit(),
        _ => ConfigError(one_line(&err, &cmd)),
    })
}

/// A configuration error: one line, naming the variable, never echoing its value.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn one_line(err: &clap::Error, cmd: &clap::Command) -> String {
    let args: Vec<String> = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    };
    let names: Vec<String> = args.iter().map(|a| env_name(a, cmd)).collect();
    match err.kind() {
        ErrorKind::MissingRequiredArgument => {
            format!("missing required environment variable {}", names.join(", "))
        }
        ErrorKind::ValueValidation | ErrorKind::InvalidValue => {
            let reason = std::error::Error::source(err)
                .map(ToString::to_string)
                .unwrap_or_else(|| "not an accepted value".to_owned());
            format!("invalid value for {}: {reason}", names.join(", "))
        }
        _ => err
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid arguments")
            .trim_start_matches("error: ")
            .to_owned(),
    }
}

/// Maps clap's rendering of an argument (`--nats-url <NATS_URL>`) to its variable.
fn env_name(rendered: &str, cmd: &clap::Command) -> String {
    let flag = rendered.split_whitespace().next().unwrap_or(rendered);
    cmd.get_arguments()
        .find(|a| a.get_long().is_some_and(|l| flag == format!("--{l}")))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| flag.to_owned())
}

/// The variables of `cmd` that look secret (a name with SECRET, TOKEN, KEY or PASSWORD,
/// or a URL that may carry credentials) but whose values `--help` would print.
/// Every service's configuration test asserts this is empty.
pub fn secrets_shown_in_help(cmd: &clap::Command) -> Vec<String> {
    const MARKS: [&str; 4] = ["SECRET", "TOKEN", "KEY", "PASSWORD"];
    const URLS: [&str; 2] = ["DATABASE_URL", "NATS_URL"];
    cmd.get_arguments()
        .filter(|a| !a.is_hide_env_values_set())
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .filter(|name| MARKS.iter().any(|m| name.contains(m)) || URLS.contains(&name.as_str()))
        .collect()
}

/// Parses durations such as `3s`, `250ms`, `2m` or `24h`.
pub fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// Wraps a secret so that `Debug` cannot print it.
pub fn parse_secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s.to_owned()))
}

/// Where the shared stream lives (every service).
#[derive(clap::Args, Debug, Clone)]
pub struct NatsConfig {
    /// NATS server URL.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        hide_env_values = true
    )]
    pub nats_url: String,
    /// JetStream stream holding every event; created when missing.
    #[arg(long, env = "NATS_STREAM", default_value = "FACEBOOK")]
    pub nats_stream: StreamName,
    /// Subjects are `<prefix>.<page_id>.<type>`.
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "fb")]
    pub nats_subject_prefix: SubjectPrefix,
    /// JetStream's duplicate window for `Nats-Msg-Id`.
    #[arg(long, env = "NATS_DUPLICATE_WINDOW", default_value = "2m", value_parser = parse_duration)]
    pub nats_duplicate_window: Duration,
}

impl NatsConfig {
    pub fn stream_spec(&self) -> StreamSpec {
        StreamSpec {
            name: self.nats_stream.clone(),
            prefix: self.nats_subject_prefix.clone(),
            duplicate_window: self.nats_duplicate_window,
        }
    }
}

/// Postgres (projector, poller, oauth-api).
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseConfig {
    /// Postgres connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/pagesync",
        hide_default_value = false,
        hide_env_values = true
    )]
    pub database_url: DatabaseUrl,
    /// Largest number of pooled connections.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 8)]
    pub database_pool_size: usize,
    /// Longest a statement may run, and a session may sit idle inside a
    /// transaction, before Postgres ends it; a connection whose server owes a reply
    /// and sends nothing for this long plus 1 s is given up by the client. `0s`
    /// turns the deadlines off.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub database_statement_timeout: Duration,
}

/// `DATABASE_URL`, parsed at the edge. `Debug` shows tokio-postgres' view of it,
/// which hides the password; the text itself is only had through [`Self::expose`].
#[derive(Clone, Debug)]
pub struct DatabaseUrl {
    config: tokio_postgres::Config,
    text: SecretString,
}

impl DatabaseUrl {
    pub fn parse(s: &str) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            config: s.parse()?,
            text: SecretString::from(s.to_owned()),
        })
    }

    /// The connection settings it names.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The URL as configured, password included (to derive another URL from it).
    pub fn expose(&self) -> &str {
        use secrecy::ExposeSecret;
        self.text.expose_secret()
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = tokio_postgres::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Limits of a service's HTTP listener (every process; docs/configuration.md, "HTTP limits").
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// How long a connection may take to send a request's headers, counted from when
    /// it is ready for one (accepted, or the previous answer sent); so it is also how
    /// long an idle keep-alive connection stays open.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_header_timeout: Duration,
    /// How long one request may take, body included, before it is answered 408; unset,
    /// the service's own default (ingest 4s, oauth-api 60s, projector and poller 10s).
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT", value_parser = parse_duration)]
    pub http_request_timeout: Option<Duration>,
    /// Most open connections. A new one past it closes the longest-idle connection, or
    /// is answered 503 when every connection is in a request.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,
    /// Most requests handled at once; more are answered 503 at once.
    #[arg(long, env = "HTTP_MAX_REQUESTS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_requests: u32,
}

impl Default for HttpConfig {
    /// The same values as the flags' defaults (a test keeps them equal).
    fn default() -> Self {
        Self {
            http_header_timeout: Duration::from_secs(10),
            http_request_timeout: None,
            http_max_connections: 1024,
            http_max_requests: 512,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use secrecy::ExposeSecret;

    #[derive(Parser, Debug)]
    struct Sample {
        #[command(flatten)]
        nats: NatsConfig,
        #[command(flatten)]
        http: HttpConfig,
        /// A secret.
        #[arg(long, env = "PAGESYNC_TEST_SECRET_ONLY_HERE", value_parser = parse_secret)]
        secret: SecretString,
    }

    #[test]
    fn a_secret_whose_value_help_would_print_is_found() {
        use clap::CommandFactory;
        assert_eq!(
            secrets_shown_in_help(&Sample::command()),
            ["PAGESYNC_TEST_SECRET_ONLY_HERE"]
        );
    }

    #[test]
    fn a_missing_variable_is_named_on_one_line() {
        let err = parse_from::<Sample, _, _>(["x"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "configuration error: missing required environment variable PAGESYNC_TEST_SECRET_ONLY_HERE"
        );
    }

    #[test]
    fn a_malformed_value_names_the_variable_but_not_the_value() {
        let err =
            parse_from::<Sample, _, _>(["x", "--secret", "s", "--nats-subject-prefix", "fb.*"])
                .unwrap_err()
                .to_string();
        assert!(err.contains("NATS_SUBJECT_PREFIX"), "{err}");
        assert!(!err.contains("fb.*"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }

    #[test]
    fn defaults_and_secrets_parse() {
        let s = parse_from::<Sample, _, _>(["x", "--secret", "hunter2"]).unwrap();
        assert_eq!(s.nats.nats_stream.as_str(), "FACEBOOK");
        assert_eq!(s.nats.nats_duplicate_window, Duration::from_secs(120));
        assert_eq!(s.secret.expose_secret(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.http, HttpConfig::default());
    }

    #[test]
    fn a_zero_connection_cap_is_refused_naming_the_variable() {
        let err = parse_from::<Sample, _, _>(["x", "--secret", "s", "--http-max-connections", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTP_MAX_CONNECTIONS"), "{err}");
    }
}
