//! `pagesync-bench ingest`: the release ingest binary against the bare floor.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pagesync_ingest::signature::AppSecret;
use pagesync_runtime::config::parse_duration;
use pagesync_testkit::private_nats::free_port;

use crate::load::{self, LoadResult};

const SECRET: &str = "bench-app-secret";

#[derive(clap::Args)]
pub struct Args {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long each measured run lasts.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Size of each delivery body in bytes.
    #[arg(long, default_value_t = 1024)]
    body_size: usize,
    /// The ingest binary to measure (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/ingest")]
    ingest_bin: PathBuf,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn run(args: Args) -> anyhow::Result<()> {
    let secret = AppSecret::new(&SECRET.to_owned().into());
    let run_id = pagesync_testkit::unique_suffix();
    let stream = format!("BENCH_{run_id}");
    let prefix = format!("bench{run_id}");
    let js = async_nats::jetstream::new(async_nats::connect(&args.nats_url).await?);

    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let _ingest = Killed(
        Command::new(&args.ingest_bin)
            .env("INGEST_ADDR", addr.to_string())
            .env("FACEBOOK_APP_SECRET", SECRET)
            .env("FACEBOOK_VERIFY_TOKEN", "bench")
            .env("NATS_URL", &args.nats_url)
            .env("NATS_STREAM", &stream)
            .env("NATS_SUBJECT_PREFIX", &prefix)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_ready(addr, "/ready").await?;
    // Warm up connections and JetStream before measuring.
    load::run(
        addr,
        args.connections,
        Duration::from_secs(1),
        args.body_size,
        &secret,
        &format!("{run_id}w"),
    )
    .await?;
    let measured = load::run(
        addr,
        args.connections,
        args.duration,
        args.body_size,
        &secret,
        &run_id,
    )
    .await?;
    let mut info = js.get_stream(&stream).await?.info().await?.clone();
    let stored = info.state.messages;
    drop(_ingest);
    js.delete_stream(&stream).await?;

    let floor_stream = format!("BENCHFLOOR_{run_id}");
    pagesync_schema::ensure_stream(
        &js,
        &pagesync_schema::StreamSpec {
            name: floor_stream.parse()?,
            prefix: format!("floor{run_id}").parse()?,
            duplicate_window: Duration::from_secs(120),
        },
    )
    .await?;
    let floor_port = free_port();
    let floor_addr: SocketAddr = format!("127.0.0.1:{floor_port}").parse()?;
    let _floor = Killed(
        Command::new(std::env::current_exe()?)
            .args([
                "floor-server",
                "--addr",
                &floor_addr.to_string(),
                "--nats-url",
                &args.nats_url,
            ])
            .args([
                "--subject",
                &format!("floor{run_id}.bench"),
                "--secret",
                SECRET,
            ])
            .spawn()?,
    );
    wait_ready(floor_addr, "/nothing").await?;
    load::run(
        floor_addr,
        args.connections,
        Duration::from_secs(1),
        args.body_size,
        &secret,
        &format!("{run_id}fw"),
    )
    .await?;
    let floor = load::run(
        floor_addr,
        args.connections,
        args.duration,
        args.body_size,
        &secret,
        &format!("{run_id}f"),
    )
    .await?;
    drop(_floor);
    info = js.get_stream(&floor_stream).await?.info().await?.clone();
    let floor_stored = info.state.messages;
    js.delete_stream(&floor_stream).await?;

    println!(
        "ingest benchmark: {} connections, {:?}, {}-byte signed deliveries, NATS {}",
        args.connections, args.duration, args.body_size, args.nats_url
    );
    print_row(
        "ingest (verify, split, publish, await ack)",
        &measured,
        stored,
    );
    print_row(
        "floor  (verify, publish one, await ack)   ",
        &floor,
        floor_stored,
    );
    println!("ratio ingest/floor: {:.2}", measured.rate() / floor.rate());
    Ok(())
}

fn print_row(name: &str, r: &LoadResult, stored: u64) {
    println!(
        "{name}: {:>8.0} deliveries/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}  ({} ok, {} in stream incl. warm-up)",
        r.rate(),
        r.p(0.50),
        r.p(0.99),
        r.errors,
        r.ok,
        stored
    );
}

pub async fn wait_ready(addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let url = format!("http://{addr}{path}");
    for _ in 0..200 {
        if reqwest::get(&url).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{url} did not answer")
}
