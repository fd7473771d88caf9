//! An in-process oauth-api on a private database and stream, for the inbox benches.

use pagesync_crypto::EncryptionKey;
use pagesync_fake_graph::FakeGraph;
use pagesync_runtime::CancellationToken;
use pagesync_testkit::{TestDb, TestNats};

pub const OPERATOR: &str = "bench-operator-token";

/// Starts oauth-api with `pool_size` database connections; answers its base URL.
pub async fn start(
    pool_size: usize,
    nats: &TestNats,
    db: &TestDb,
    fake: &FakeGraph,
    stop: CancellationToken,
) -> anyhow::Result<String> {
    let (_, key) = EncryptionKey::generate();
    let graph = fake.base_url();
    let argv = [
        "oauth-api",
        "--oauth-api-addr=127.0.0.1:0",
        "--facebook-app-id",
        FakeGraph::APP_ID,
        "--facebook-app-secret",
        FakeGraph::APP_SECRET,
        "--facebook-redirect-uri=http://127.0.0.1:5000/facebook/callback",
        "--state-token-secret=bench-state-secret",
        "--token-encryption-key",
        &key,
        "--graph-api-base",
        &graph,
        "--operator-token",
        OPERATOR,
        "--graph-page-call-interval=0s",
    ];
    let mut config: pagesync_oauth_api::Config = pagesync_runtime::config::parse_from(argv)?;
    config.nats = nats.config();
    config.database = db.config();
    config.database.database_pool_size = pool_size;
    let app = pagesync_oauth_api::App::build(config).await?;
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(stop));
    Ok(base)
}
