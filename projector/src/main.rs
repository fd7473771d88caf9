//! The `projector` binary: configuration, telemetry, signals, then the library.

use anyhow::Context;
use pagesync_projector::dead_letters::{self, DeadLetterCommand};
use pagesync_projector::{App, Command, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = pagesync_runtime::config::load_or_exit("projector");
    let _telemetry = pagesync_runtime::telemetry::init("projector", &config.telemetry)?;
    let mode = config.mode();
    if let Command::DeadLetters(command) = &mode
        && let Some(out) = dead_letters::run_in_postgres(&config.database, command)
            .await
            .context("dead letters")?
    {
        print!("{out}");
        return Ok(());
    }
    if mode == Command::Migrate {
        pagesync_projector::migrate(&config.database)
            .await
            .context("migrating the database failed")?;
        tracing::info!("database migrated");
        return Ok(());
    }
    let app = App::build(config)
        .await
        .context("projector failed to start")?;
    let shutdown = pagesync_runtime::shutdown::on_signals();
    match mode {
        Command::Run => app
            .run_until_stopped(shutdown)
            .await
            .context("projector stopped")?,
        Command::Drain => {
            let report = app.drain(shutdown).await.context("drain failed")?;
            tracing::info!(?report, "drained");
        }
        Command::Rebuild => {
            let report = app.rebuild(shutdown).await.context("rebuild failed")?;
            tracing::info!(?report, "rebuilt");
        }
        Command::RetryDeadLetters => {
            let report = app
                .retry_dead_letters(shutdown)
                .await
                .context("retrying the dead letters failed")?;
            tracing::info!(?report, "dead letters retried");
        }
        Command::DeadLetters(DeadLetterCommand::Retry { stream_seqs }) => {
            let report = app
                .retry_dead_letters_of(&stream_seqs, shutdown)
                .await
                .context("retrying the dead letters failed")?;
            println!(
                "retried {}: {} applied, {} still dead",
                report.retried, report.applied, report.still_dead
            );
        }
        Command::DeadLetters(_) => unreachable!("run in Postgres above"),
        Command::Migrate => unreachable!("migrate returns before the app is built"),
    }
    Ok(())
}
