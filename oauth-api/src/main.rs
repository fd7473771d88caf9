use std::process::ExitCode;

use anyhow::Context;
use pagesync_oauth_api::{App, Command, Config};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let config: Config = match pagesync_runtime::config::load_for("oauth-api") {
        Ok(config) => config,
        Err(status) => return Ok(status),
    };
    let _telemetry = pagesync_runtime::telemetry::init("oauth-api", &config.telemetry)?;
    if config.command == Some(Command::ReencryptTokens) {
        let pool = pagesync_runtime::connect::postgres(&config.database)
            .await
            .context("connecting to Postgres")?;
        let cipher = config.keys.cipher();
        let report = pagesync_oauth_api::reencrypt::reencrypt_tokens(&pool, &cipher).await?;
        println!(
            "re-encrypted {} token(s); {} already current; {} failed",
            report.reencrypted,
            report.current,
            report.failed.len()
        );
        // Returning (rather than exiting) lets the telemetry guard flush.
        anyhow::ensure!(
            report.failed.is_empty(),
            "{} token(s) could not be re-encrypted: see the log",
            report.failed.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let shutdown = pagesync_runtime::shutdown::on_signals();
    let app = App::build(config).await.context("starting oauth-api")?;
    app.run_until_stopped(shutdown).await.context("serving")?;
    tracing::info!("oauth-api stopped");
    Ok(ExitCode::SUCCESS)
}
