//! Connections to the dependencies, made eagerly so a service fails fast at start.

use std::time::Duration;

use async_nats::jetstream;
use deadpool_postgres::{ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts};

use crate::config::{DatabaseConfig, NatsConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to NATS: {0}")]
    Nats(#[from] async_nats::ConnectError),
    #[error(transparent)]
    Stream(#[from] pagesync_schema::stream::StreamError),
    #[error("invalid DATABASE_URL or pool settings: {0}")]
    PoolConfig(#[from] deadpool_postgres::CreatePoolError),
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

/// A Postgres pool with bounded waits, checked with one connection, migrated.
pub async fn postgres(cfg: &DatabaseConfig) -> Result<Pool, ConnectError> {
    let pool = pool(cfg)?;
    pagesync_schema::migrations::run(&pool).await?;
    Ok(pool)
}

/// A Postgres pool without touching the database (deadpool connects lazily).
pub fn pool(cfg: &DatabaseConfig) -> Result<Pool, ConnectError> {
    let mut pg = deadpool_postgres::Config::new();
    pg.url = Some(cfg.database_url.clone());
    pg.manager = Some(ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    });
    let wait = Some(Duration::from_secs(5));
    pg.pool = Some(PoolConfig {
        max_size: cfg.database_pool_size,
        timeouts: Timeouts {
            wait,
            create: wait,
            recycle: wait,
        },
        ..Default::default()
    });
    Ok(pg.create_pool(Some(Runtime::Tokio1), tokio_postgres::NoTls)?)
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
