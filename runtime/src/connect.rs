//! Connections to the dependencies, made eagerly so a service fails fast at start.

use std::time::Duration;

use async_nats::jetstream;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::config::{DatabaseConfig, NatsConfig};
use crate::socket;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to NATS: {0}")]
    Nats(#[from] async_nats::ConnectError),
    #[error(transparent)]
    Stream(#[from] pagesync_schema::stream::StreamError),
    #[error("invalid pool settings: {0}")]
    PoolConfig(#[from] deadpool_postgres::BuildError),
    #[error("cannot connect to Postgres: {0}")]
    Postgres(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Migrations(#[from] pagesync_schema::migrations::MigrationError),
}

/// A NATS connection, its JetStream context, and the shared stream, created or updated.
pub struct Nats {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub stream: jetstream::stream::Stream,
}

/// Connects to NATS and makes sure the stream exists. `request_timeout` bounds
/// JetStream API calls and awaited publish acknowledgements.
pub async fn nats(
    cfg: &NatsConfig,
    client_name: &str,
    request_timeout: Duration,
) -> Result<Nats, ConnectError> {
    let client = async_nats::ConnectOptions::new()
        .name(client_name)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                other => tracing::debug!(event = %other, "NATS event"),
            }
        })
        .connect(&cfg.nats_url)
        .await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(request_timeout)
        .build(client.clone());
    let stream = pagesync_schema::ensure_stream(&js, &cfg.stream_spec()).await?;
    Ok(Nats { client, js, stream })
}

/// A Postgres pool with bounded waits and deadlines, migrated. Migrations run on
/// connections of their own without the statement deadline: an index build may
/// rightly take longer than any query of the services.
pub async fn postgres(cfg: &DatabaseConfig) -> Result<Pool, ConnectError> {
    let migrator = pool_with(cfg, None)?;
    let migrated = pagesync_schema::migrations::run(&migrator).await;
    migrator.close();
    migrated?;
    pool(cfg)
}

/// A Postgres pool without touching the database (deadpool connects lazily), with
/// the deadlines of `DATABASE_STATEMENT_TIMEOUT` on every connection.
pub fn pool(cfg: &DatabaseConfig) -> Result<Pool, ConnectError> {
    let limit = Some(cfg.database_statement_timeout).filter(|d| !d.is_zero());
    pool_with(cfg, limit)
}

/// How much longer than the server's `statement_timeout` the client waits for a
/// reply before it gives the connection up: a server that is answering reports a
/// statement it cancelled first, and the connection stays usable.
const SILENCE_MARGIN: Duration = Duration::from_secs(1);

/// `DATABASE_URL` with a connect timeout and keepalives: for the pool, and for a
/// connection of its own (oauth-api's `LISTEN`).
pub fn pg_config(cfg: &DatabaseConfig) -> tokio_postgres::Config {
    let mut pg = cfg.database_url.config().clone();
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(5));
    }
    // A peer that is gone is noticed within ~25 s even on an idle connection.
    pg.keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    pg
}

fn pool_with(cfg: &DatabaseConfig, limit: Option<Duration>) -> Result<Pool, ConnectError> {
    let mut pg = pg_config(cfg);
    if let Some(limit) = limit {
        let ms = limit.as_millis();
        // Data the server never acknowledges fails the socket, and the server
        // cancels a statement that runs too long and ends a session left idle
        // inside a transaction (whose locks would otherwise be held forever by a
        // client that vanished). Options in the URL come after, so they win.
        pg.tcp_user_timeout(limit);
        let ours = format!("-c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms}");
        let options = match pg.get_options() {
            Some(theirs) => format!("{ours} {theirs}"),
            None => ours,
        };
        pg.options(options);
    }
    let connect = socket::Connector {
        silence: limit.map(|l| l + SILENCE_MARGIN),
    };
    let manager = Manager::from_connect(
        pg,
        connect,
        ManagerConfig {
            // Reuse does not touch the network: a connection that went silent is
            // closed by its watchdog, and a closed one is never handed out.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let wait = Some(Duration::from_secs(5));
    Ok(Pool::builder(manager)
        .max_size(cfg.database_pool_size)
        .wait_timeout(wait)
        .create_timeout(wait)
        .recycle_timeout(wait)
        .runtime(Runtime::Tokio1)
        .build()?)
}

/// Takes a connection that missed a deadline out of its pool for good, and drops
/// the pool's idle connections too: they were made over the same network, and the
/// next caller had better start on a fresh one than find another silent one.
pub fn discard(conn: deadpool_postgres::Object) {
    let pool = deadpool_postgres::Object::pool(&conn);
    drop(deadpool_postgres::Object::take(conn));
    let idle = pool.map_or(0, |p| p.retain(|_, _| false).removed.len());
    tracing::warn!(
        idle_dropped = idle,
        "Postgres connection discarded after a missed deadline"
    );
}

/// A Postgres error as one line: the server's complaint and SQLSTATE when it
/// answered (tokio-postgres' own `Display` says only "db error"), else the
/// client-side error.
pub fn db_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
