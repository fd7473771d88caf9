//! Test harness shared by every crate: isolated NATS streams, Postgres databases,
//! data directories, and a private `nats-server` for tests that stop NATS.
//!
//! Tests use the servers at `NATS_URL` and `DATABASE_URL` (defaults: the local
//! ones) and never share a stream, subject prefix, database or directory.

mod cleanup;
mod db;
pub mod logs;
pub mod nats;
pub mod private_nats;
pub mod proxy;
pub mod raw_http;
pub mod wait;

pub use db::TestDb;
pub use nats::TestNats;
pub use private_nats::PrivateNats;
pub use proxy::Proxy;

/// A short random suffix for names (stream, prefix, database).
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A fresh empty directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pagesync-test-")
        .tempdir()
        .expect("create a temp dir")
}

/// The NATS URL tests use.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// The Postgres URL tests derive their databases from.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}
