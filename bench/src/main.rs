//! Load benchmarks. Not run in CI; figures go to docs/benchmarks.md.
//!
//! `pagesync-bench ingest` starts the release `ingest` binary on a private stream of
//! the local NATS, drives it with signed deliveries from keep-alive connections,
//! then does the same against a bare floor server (HMAC check + one acked publish).

mod api;
mod attack;
mod e2e;
mod files;
mod floor;
mod inbox;
mod ingest;
mod load;
mod replies;
mod sse;
mod wrk;

use clap::{Parser, Subcommand};

// The same allocator as ingest, so the floor comparison stays fair.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "pagesync-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Webhook deliveries/s and latency of `ingest`, and of the bare floor.
    Ingest(ingest::Args),
    /// Webhook POST → conversation file latency of ingest and projector together.
    E2e(e2e::Args),
    /// Webhook POST → mid in file for a fresh conversation and one of 10,000 messages.
    Files(files::Args),
    /// Slow and idle clients against `ingest`: its RSS, descriptors, and a delivery meanwhile.
    Attack(attack::Args),
    /// Inbox replies/s through oauth-api against the fake Send API (50 ms latency).
    Replies(replies::Args),
    /// The inbox's read routes (list, cursors, search, messages) under concurrent clients.
    Inbox(inbox::Args),
    /// Live updates (`/api/events`) to many clients while webhooks arrive.
    Sse(sse::Args),
    /// The floor server alone (started by `ingest`; not meant to be run by hand).
    FloorServer(floor::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ingest(args) => ingest::run(args),
        Command::E2e(args) => e2e::run(args),
        Command::Files(args) => files::run(args),
        Command::Attack(args) => attack::run(args),
        Command::Replies(args) => replies::run(args),
        Command::Inbox(args) => inbox::run(args),
        Command::Sse(args) => sse::run(args),
        Command::FloorServer(args) => floor::serve(args),
    }
}
