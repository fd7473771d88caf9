use std::process::ExitCode;

use anyhow::Context;
use pagesync_poller::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let config: Config = match pagesync_runtime::config::load_for("poller") {
        Ok(config) => config,
        Err(status) => return Ok(status),
    };
    let _telemetry = pagesync_runtime::telemetry::init("poller", &config.telemetry)?;
    let (once, page) = (config.once, config.page.clone());
    let app = App::build(config).await.context("starting poller")?;
    if once {
        let report = app.run_cycle(page.as_ref()).await.context("poll cycle")?;
        return Ok(if report.all_succeeded() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let shutdown = pagesync_runtime::shutdown::on_signals();
    app.run_until_stopped(shutdown).await.context("running")?;
    tracing::info!("poller stopped");
    Ok(ExitCode::SUCCESS)
}
