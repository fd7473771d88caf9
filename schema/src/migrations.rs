//! SQL migrations shared by every service that uses Postgres.

use deadpool_postgres::Pool;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Arbitrary, fixed key of the advisory lock that serialises concurrent migrators.
const MIGRATION_LOCK: i64 = 0x7061_6765_7379_6e63; // "pagesync"

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("could not get a database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("could not take the migration lock: {0}")]
    Lock(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
}

/// Applies every pending migration. Several services may call this at once:
/// an advisory lock lets one migrate while the others wait, then find nothing to do.
pub async fn run(pool: &Pool) -> Result<(), MigrationError> {
    run_to(pool, refinery::Target::Latest).await
}

/// Applies the migrations up to and including `version`: for tests of the data
/// conversion a later migration does.
pub async fn run_until(pool: &Pool, version: i32) -> Result<(), MigrationError> {
    run_to(pool, refinery::Target::Version(version)).await
}

async fn run_to(pool: &Pool, target: refinery::Target) -> Result<(), MigrationError> {
    let mut conn = pool.get().await?;
    conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let client: &mut tokio_postgres::Client = &mut conn;
    let result = embedded::migrations::runner()
        .set_target(target)
        .run_async(client)
        .await;
    conn.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    result?;
    Ok(())
}
