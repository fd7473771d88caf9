//! The fake Graph API as a process, for `scripts/dev --demo` (docs/console.md):
//! a sample page whose token the demo connects, so the console has something to
//! show without a Facebook app. Development only.

use std::net::SocketAddr;

use clap::Parser;
use pagesync_fake_graph::FakeGraph;

#[derive(Parser)]
#[command(about = "A fake Facebook Graph API for the pagesync demo (development only)")]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:5010")]
    addr: SocketAddr,
    /// A page as `<id>:<name>:<page token>`; repeatable.
    #[arg(long = "page", value_parser = parse_page)]
    pages: Vec<(String, String, String)>,
}

fn parse_page(s: &str) -> Result<(String, String, String), String> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(name), Some(token)) if !id.is_empty() && !token.is_empty() => {
            Ok((id.to_owned(), name.to_owned(), token.to_owned()))
        }
        _ => Err(format!("expected <id>:<name>:<token>, got {s:?}")),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let fake = FakeGraph::start_on(args.addr).await?;
    for (id, name, token) in &args.pages {
        fake.add_page(id, name, token);
    }
    println!(
        "fake Graph API at {} (app id {}), {} page(s); Ctrl-C stops it",
        fake.base_url(),
        FakeGraph::APP_ID,
        args.pages.len()
    );
    pagesync_runtime::shutdown::on_signals().cancelled().await;
    Ok(())
}
