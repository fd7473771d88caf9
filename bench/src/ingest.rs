//! `pagesync-bench ingest`: the release ingest binary against the bare floor.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pagesync_runtime::config::parse_duration;
use pagesync_schema::signature::AppSecret;
use pagesync_testkit::private_nats::free_port;

use crate::{load, wrk};

const SECRET: &str = "bench-app-secret";

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// The built-in Rust generator (hyper, one thread): no extra install.
    Rust,
    /// `wrk` (Debian package), replaying pre-signed unique deliveries.
    Wrk,
}

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
    /// Load generator.
    #[arg(long, value_enum, default_value = "rust")]
    client: Client,
    /// With `--client wrk`: pre-signed deliveries per wrk thread (each is sent once;
    /// size it above the expected rate × duration / 2).
    #[arg(long, default_value_t = 400_000)]
    wrk_requests_per_thread: usize,
    /// The ingest binary to measure (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/ingest")]
    ingest_bin: PathBuf,
    /// NATS to publish to (a cluster member for the R3 profile, docs/durability.md).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Replicas of the two benchmark streams, created before ingest starts (ingest
    /// keeps an existing stream's replicas): 3 on a 3-node cluster.
    #[arg(long, default_value_t = 1)]
    stream_replicas: usize,
}

pub(crate) struct Killed(pub(crate) Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One measured target.
struct Row {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    ok: u64,
    stored: u64,
}

#[tokio::main(flavor = "current_thread")]
pub async fn run(args: Args) -> anyhow::Result<()> {
    let secret = AppSecret::new(&SECRET.to_owned().into());
    let run_id = pagesync_testkit::unique_suffix();
    let js = async_nats::jetstream::new(async_nats::connect(&args.nats_url).await?);

    let stream = format!("BENCH_{run_id}");
    create_stream(
        &js,
        &stream,
        &format!("bench{run_id}"),
        args.stream_replicas,
    )
    .await?;
    let addr = local_addr();
    let ingest = Killed(
        Command::new(&args.ingest_bin)
            .env("INGEST_ADDR", addr.to_string())
            .env("FACEBOOK_APP_SECRET", SECRET)
            .env("FACEBOOK_VERIFY_TOKEN", "bench")
            .env("NATS_URL", &args.nats_url)
            .env("NATS_STREAM", &stream)
            .env("NATS_SUBJECT_PREFIX", format!("bench{run_id}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_ready(addr, "/ready").await?;
    let mut measured = measure(&args, addr, &secret, &format!("{run_id}i")).await?;
    drop(ingest);
    measured.stored = stream_count(&js, &stream, args.stream_replicas).await?;

    let floor_stream = format!("BENCHFLOOR_{run_id}");
    create_stream(
        &js,
        &floor_stream,
        &format!("floor{run_id}"),
        args.stream_replicas,
    )
    .await?;
    let floor_addr = local_addr();
    let floor = Killed(
        Command::new(std::env::current_exe()?)
            .args(["floor-server", "--addr", &floor_addr.to_string()])
            .args(["--nats-url", &args.nats_url, "--secret", SECRET])
            .args(["--subject", &format!("floor{run_id}.bench")])
            .spawn()?,
    );
    wait_ready(floor_addr, "/nothing").await?;
    let mut baseline = measure(&args, floor_addr, &secret, &format!("{run_id}f")).await?;
    drop(floor);
    baseline.stored = stream_count(&js, &floor_stream, args.stream_replicas).await?;

    let client = match args.client {
        Client::Rust => "built-in Rust client (1 thread)",
        Client::Wrk => "wrk -t2",
    };
    println!(
        "ingest benchmark: {} connections, {:?}, {}-byte signed deliveries, {client}, NATS {}, R{}",
        args.connections, args.duration, args.body_size, args.nats_url, args.stream_replicas
    );
    print_row("ingest (verify, split, publish, await ack)", &measured);
    print_row("floor  (verify, publish one, await ack)   ", &baseline);
    println!("ratio ingest/floor: {:.2}", measured.rate / baseline.rate);
    Ok(())
}

/// A file-stored stream on `<prefix>.>` as ingest would create it, with `replicas`.
async fn create_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    prefix: &str,
    replicas: usize,
) -> anyhow::Result<()> {
    use async_nats::jetstream::stream;
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{prefix}.>")],
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::New,
        duplicate_window: Duration::from_secs(120),
        num_replicas: replicas,
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// One second of warm-up (connections, JetStream), then the measured run.
async fn measure(
    args: &Args,
    addr: SocketAddr,
    secret: &AppSecret,
    run: &str,
) -> anyhow::Result<Row> {
    let warm_up = format!("{run}w");
    load::run(
        addr,
        args.connections,
        Duration::from_secs(1),
        args.body_size,
        secret,
        &warm_up,
    )
    .await?;
    match args.client {
        Client::Rust => {
            let r = load::run(
                addr,
                args.connections,
                args.duration,
                args.body_size,
                secret,
                run,
            )
            .await?;
            Ok(Row {
                rate: r.rate(),
                p50_ms: r.p(0.50),
                p99_ms: r.p(0.99),
                errors: r.errors,
                ok: r.ok,
                stored: 0,
            })
        }
        Client::Wrk => {
            let dir = tempfile::tempdir()?;
            wrk::prepare(
                dir.path(),
                run,
                args.wrk_requests_per_thread,
                args.body_size,
                secret,
            )?;
            let (path, connections, duration) =
                (dir.path().to_owned(), args.connections, args.duration);
            let r =
                tokio::task::spawn_blocking(move || wrk::run(&path, addr, connections, duration))
                    .await??;
            let sent_per_thread = r.requests as usize / wrk::THREADS;
            anyhow::ensure!(
                sent_per_thread < args.wrk_requests_per_thread,
                "wrk replayed deliveries ({} per thread); raise --wrk-requests-per-thread",
                sent_per_thread
            );
            Ok(Row {
                rate: r.rate,
                p50_ms: r.p50_ms,
                p99_ms: r.p99_ms,
                errors: r.errors,
                ok: r.requests - r.errors,
                stored: 0,
            })
        }
    }
}

pub(crate) fn local_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The messages the stream holds (it is deleted afterwards); fails when it does not
/// have the replicas it was created with, so a run reports the profile it measured.
async fn stream_count(
    js: &async_nats::jetstream::Context,
    stream: &str,
    replicas: usize,
) -> anyhow::Result<u64> {
    let info = js.get_stream(stream).await?.info().await?.clone();
    js.delete_stream(stream).await?;
    anyhow::ensure!(
        info.config.num_replicas == replicas,
        "stream {stream} has {} replicas, not {replicas}",
        info.config.num_replicas
    );
    Ok(info.state.messages)
}

fn print_row(name: &str, r: &Row) {
    println!(
        "{name}: {:>8.0} deliveries/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}  ({} ok, {} in stream incl. 1 s warm-up)",
        r.rate, r.p50_ms, r.p99_ms, r.errors, r.ok, r.stored
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
