//! `pagesync-bench attack`: the release ingest binary under slow and idle clients,
//! with the process's RSS and open descriptors read from /proc, and whether a valid
//! delivery still succeeds during each attack. Every attack is bounded in count and
//! time and talks only to the loopback ingest it started.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pagesync_schema::signature::AppSecret;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::ingest::{Killed, local_addr, wait_ready};
use crate::load::delivery;

const SECRET: &str = "bench-app-secret";
const MIB: usize = 1024 * 1024;

#[derive(clap::Args)]
pub struct Args {
    /// The ingest binary under attack (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/ingest")]
    ingest_bin: PathBuf,
    /// Sockets each attack opens.
    #[arg(long, default_value_t = 300)]
    sockets: usize,
    /// Unfinished 4 MiB bodies of the memory attack.
    #[arg(long, default_value_t = 50)]
    bodies: usize,
    /// File-descriptor limit of the ingest process in the idle-socket attack.
    #[arg(long, default_value_t = 256)]
    fd_limit: u32,
    /// How long each attack lasts (longer than ingest's 10 s header timeout).
    #[arg(long, default_value = "12s", value_parser = pagesync_runtime::config::parse_duration)]
    hold: Duration,
    /// When, into the attack, the valid delivery is sent.
    #[arg(long, default_value = "3s", value_parser = pagesync_runtime::config::parse_duration)]
    deliver_after: Duration,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
}

#[derive(Clone, Copy)]
enum Attack {
    /// Heads sent one byte per second.
    SlowHeaders,
    /// Complete heads, then a body of one byte per second.
    SlowBodies,
    /// Bodies declaring 4 MiB, 2 MiB of each sent, the rest never.
    UnfinishedBodies,
    /// Sockets that connect and send nothing, against a low descriptor limit.
    IdleSockets,
}

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Self::SlowHeaders => "slow headers",
            Self::SlowBodies => "slow bodies",
            Self::UnfinishedBodies => "unfinished 4 MiB bodies",
            Self::IdleSockets => "idle sockets",
        }
    }
}

#[tokio::main]
pub async fn run(args: Args) -> anyhow::Result<()> {
    let secret = AppSecret::new(&SECRET.to_owned().into());
    println!(
        "attack on {} (hold {:?}); RSS and descriptors of the ingest process",
        args.ingest_bin.display(),
        args.hold
    );
    println!(
        "| attack | sockets | RSS before | RSS peak | fds during | delivery during | its latency | attack sockets closed by ingest |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for attack in [
        Attack::SlowHeaders,
        Attack::SlowBodies,
        Attack::UnfinishedBodies,
        Attack::IdleSockets,
    ] {
        run_one(&args, attack, &secret).await?;
    }
    Ok(())
}

async fn run_one(args: &Args, attack: Attack, secret: &AppSecret) -> anyhow::Result<()> {
    let addr = local_addr();
    let ingest = start(args, addr, matches!(attack, Attack::IdleSockets))?;
    wait_ready(addr, "/ready").await?;
    let pid = ingest.0.id();
    let before = proc_kib(pid, "VmRSS:")?;
    let count = match attack {
        Attack::UnfinishedBodies => args.bodies,
        _ => args.sockets,
    };
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        match TcpStream::connect(addr).await {
            Ok(s) => sockets.push(s),
            Err(e) => anyhow::bail!("connect {}: {e}", sockets.len()),
        }
    }
    let deadline = Instant::now() + args.hold;
    let driver = tokio::spawn(drive(attack, sockets, deadline, secret.clone()));
    tokio::time::sleep(args.deliver_after).await;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    let (status, latency) = valid_delivery(addr, secret).await;
    let closed = driver.await??;
    let peak = proc_kib(pid, "VmHWM:")?;
    println!(
        "| {} | {count} | {:.1} MiB | {:.1} MiB | {fds} | {status} | {latency} | {closed} of {count} |",
        attack.name(),
        before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    drop(ingest);
    Ok(())
}

fn start(args: &Args, addr: SocketAddr, low_fd_limit: bool) -> anyhow::Result<Killed> {
    let run_id = pagesync_testkit::unique_suffix();
    let mut cmd = if low_fd_limit {
        let mut c = Command::new("prlimit");
        c.arg(format!("--nofile={}", args.fd_limit))
            .arg("--")
            .arg(&args.ingest_bin);
        c
    } else {
        Command::new(&args.ingest_bin)
    };
    cmd.env("INGEST_ADDR", addr.to_string())
        .env("FACEBOOK_APP_SECRET", SECRET)
        .env("FACEBOOK_VERIFY_TOKEN", "bench")
        .env("NATS_URL", &args.nats_url)
        .env("NATS_STREAM", format!("ATTACK_{run_id}"))
        .env("NATS_SUBJECT_PREFIX", format!("attack{run_id}"))
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // prlimit execs the binary, so the pid read later is ingest's own.
    Ok(Killed(cmd.spawn()?))
}

/// Runs the attack on `sockets` until `deadline`; returns how many ingest closed.
async fn drive(
    attack: Attack,
    sockets: Vec<TcpStream>,
    deadline: Instant,
    secret: AppSecret,
) -> anyhow::Result<usize> {
    let head = |len: usize| {
        format!(
            "POST /facebook/webhook HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n\
             x-hub-signature-256: {}\r\ncontent-length: {len}\r\n\r\n",
            secret.sign(b"never matches")
        )
        .into_bytes()
    };
    let mut tasks = Vec::new();
    for mut socket in sockets {
        let (first, then): (Vec<u8>, &'static [u8]) = match attack {
            Attack::SlowHeaders => (Vec::new(), b"POST /facebook/webhook HTTP/1.1\r\nx-a: "),
            Attack::SlowBodies => (head(1000), b"{"),
            Attack::UnfinishedBodies => ([head(4 * MIB), vec![b' '; 2 * MIB]].concat(), b""),
            Attack::IdleSockets => (Vec::new(), b""),
        };
        tasks.push(tokio::spawn(async move {
            if socket.write_all(&first).await.is_err() {
                return true;
            }
            hold(&mut socket, then, deadline).await
        }));
    }
    let mut closed = 0;
    for t in tasks {
        closed += usize::from(t.await?);
    }
    Ok(closed)
}

/// Sends `trickle` one byte a second until `deadline`; true when ingest closed the socket.
async fn hold(socket: &mut TcpStream, trickle: &[u8], deadline: Instant) -> bool {
    let mut bytes = trickle.iter().cycle();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        let wait = Duration::from_secs(1).min(deadline - Instant::now());
        match tokio::time::timeout(wait, tokio::io::AsyncReadExt::read(socket, &mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_answer)) => {}
            Err(_quiet) => {}
        }
        if let Some(b) = bytes.next()
            && socket.write_all(&[*b]).await.is_err()
        {
            return true;
        }
    }
    false
}

/// A signed delivery on a new connection: its status (or failure) and latency.
async fn valid_delivery(addr: SocketAddr, secret: &AppSecret) -> (String, String) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
    {
        Ok(c) => c,
        Err(e) => return (format!("no client: {e}"), "-".into()),
    };
    let body = delivery("attack", 0, rand_seq(), 1024);
    let started = Instant::now();
    let result = client
        .post(format!("http://{addr}/facebook/webhook"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", secret.sign(body.as_bytes()))
        .body(body)
        .send()
        .await;
    let took = format!("{:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    match result {
        Ok(r) => (r.status().to_string(), took),
        Err(e) if e.is_timeout() => ("timed out (10 s)".into(), took),
        Err(e) => (format!("failed: {e}"), took),
    }
}

fn rand_seq() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:`).
fn proc_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| anyhow::anyhow!("{field} not in /proc/{pid}/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("malformed {field}"))?
        .parse()?)
}
