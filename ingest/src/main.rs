use std::process::ExitCode;

use anyhow::Context;
use pagesync_ingest::{App, Config};

// glibc malloc's arena locks showed up in profiles of the webhook path under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let config: Config = match pagesync_runtime::config::load_for("ingest") {
        Ok(config) => config,
        Err(status) => return Ok(status),
    };
    // Limits that contradict each other are a configuration error like any other.
    if let Err(e) = config.validate() {
        return Ok(pagesync_runtime::config::refuse("ingest", &e));
    }
    let _telemetry = pagesync_runtime::telemetry::init("ingest", &config.telemetry)?;
    let shutdown = pagesync_runtime::shutdown::on_signals();
    let app = App::build(config).await.context("starting ingest")?;
    app.run_until_stopped(shutdown).await.context("serving")?;
    tracing::info!("ingest stopped");
    Ok(ExitCode::SUCCESS)
}
