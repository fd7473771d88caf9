//! Setup shared by the poller's tests and benchmarks, not for production: compiled
//! only with the `test-support` feature, so one place changes when the poller's
//! configuration or the `integrations` table grows.

use pagesync_crypto::TokenCipher;
use pagesync_runtime::config::{DatabaseConfig, NatsConfig};
use tokio_postgres::GenericClient;

use crate::Config;

/// The Graph API a test poller calls (usually the fake one) and the app it calls as.
#[derive(Debug, Clone, Copy)]
pub struct GraphApp<'a> {
    /// Base URL including the version.
    pub base_url: &'a str,
    pub app_id: &'a str,
    pub app_secret: &'a str,
}

impl<'a> GraphApp<'a> {
    pub fn new(base_url: &'a str, app_id: &'a str, app_secret: &'a str) -> Self {
        Self {
            base_url,
            app_id,
            app_secret,
        }
    }
}

/// A poller `Config` parsed as from the command line: `/health` on `127.0.0.1:0`,
/// `graph`'s URL and app, stored tokens decrypted with `token_key_b64`, then `extra`
/// flags; `nats` and `database` replace what the environment says. Everything else
/// keeps its production default, per-page pacing included.
///
/// # Panics
///
/// When the flags do not parse: a mistake in the test, not a condition to handle.
pub fn config(
    graph: &GraphApp<'_>,
    token_key_b64: &str,
    nats: NatsConfig,
    database: DatabaseConfig,
    extra: &[&str],
) -> Config {
    let mut args = vec![
        "poller",
        "--addr",
        "127.0.0.1:0",
        "--graph-api-base",
        graph.base_url,
        "--facebook-app-id",
        graph.app_id,
        "--facebook-app-secret",
        graph.app_secret,
        "--token-encryption-key",
        token_key_b64,
    ];
    args.extend_from_slice(extra);
    let mut config: Config = pagesync_runtime::config::parse_from(args)
        .unwrap_or_else(|e| panic!("test poller flags {extra:?}: {e}"));
    config.nats = nats;
    config.database = database;
    config
}

/// What oauth-api does when a page is connected: stores an active integration for
/// `page` with `token` sealed by `cipher` (bound to the page id).
pub async fn store_integration(
    client: &impl GenericClient,
    cipher: &TokenCipher,
    page: &str,
    token: &str,
) -> Result<(), tokio_postgres::Error> {
    let sealed = cipher.encrypt(token, page);
    client
        .execute(
            "INSERT INTO integrations (page_id, page_token_ciphertext, page_token_key_id) \
             VALUES ($1, $2, $3)",
            &[&page, &sealed.bytes, &sealed.key_id],
        )
        .await?;
    Ok(())
}
