//! `pagesync-bench e2e`: webhook POST → the conversation file contains the mid.
//!
//! Starts the release `ingest` and `projector` binaries on a private stream,
//! database and data directory, sends signed one-message deliveries open-loop at a
//! steady rate, and watches the files with inotify: a delivery's latency is from
//! the start of its POST to the first file write that contains its mid.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use notify::{RecursiveMode, Watcher};
use pagesync_runtime::config::parse_duration;
use pagesync_schema::signature::AppSecret;
use pagesync_testkit::private_nats::free_port;
use pagesync_testkit::{TestDb, TestNats};

const SECRET: &str = "bench-app-secret";
const PAGE: &str = "101368371725791";

#[derive(clap::Args)]
pub struct Args {
    /// Deliveries per second, sent on a fixed schedule whatever the answers.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Distinct customers (conversation files) the deliveries are spread over.
    #[arg(long, default_value_t = 200)]
    customers: u32,
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
}

/// A child process killed when dropped.
pub(crate) struct Killed(pub(crate) Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sent mids not yet seen in a file, by customer: (mid, sent at).
type Pending = Arc<Mutex<HashMap<String, Vec<(String, Instant)>>>>;

#[tokio::main]
pub async fn run(args: Args) -> anyhow::Result<()> {
    let nats = TestNats::new().await;
    let db = TestDb::new().await;
    let data = tempfile::tempdir()?;
    let services = Services::start(&args, &nats, &db, data.path()).await?;

    // Created up front so inotify watches it before the first file lands there.
    std::fs::create_dir_all(
        data.path()
            .join("facebook")
            .join(PAGE)
            .join("conversations"),
    )?;
    let pending: Pending = Arc::default();
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let _watcher = watch(data.path(), pending.clone(), latencies.clone())?;

    let url = format!("http://127.0.0.1:{}/facebook/webhook", services.ingest_port);
    let total = (args.rate as f64 * args.duration.as_secs_f64()) as u64;
    let started = Instant::now();
    let (http_latency, errors) = send_all(&args, &url, total, &pending).await?;
    let sent_for = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pending.lock().unwrap().values().any(|v| !v.is_empty()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let missing: usize = pending.lock().unwrap().values().map(Vec::len).sum();
    let e2e = latencies.lock().unwrap().clone();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "e2e benchmark: {total} deliveries at {} /s over {:.1} s, {} customers, 1 page",
        args.rate,
        sent_for.as_secs_f64(),
        args.customers
    );
    println!(
        "webhook POST -> file contains mid: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} seen, {} missing)",
        ms(&e2e, 0.5),
        ms(&e2e, 0.99),
        e2e.max() as f64 / 1000.0,
        e2e.len(),
        missing
    );
    println!(
        "webhook POST -> 200:                p50 {:.1} ms  p99 {:.1} ms  errors {errors}",
        ms(&http_latency, 0.5),
        ms(&http_latency, 0.99),
    );
    drop(services);
    Ok(())
}

/// The ingest and projector binaries, running until dropped.
struct Services {
    ingest_port: u16,
    _running: [Killed; 2],
}

impl Services {
    async fn start(
        args: &Args,
        nats: &TestNats,
        db: &TestDb,
        data: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let env = |cmd: &mut Command| {
            cmd.envs(nats.env())
                .env("DATABASE_URL", &db.url)
                .env("DATA_DIR", data)
                .env("FACEBOOK_APP_SECRET", SECRET)
                .env("FACEBOOK_VERIFY_TOKEN", "bench")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null());
        };
        let ingest_port = free_port();
        let mut ingest = Command::new(args.bin_dir.join("ingest"));
        env(&mut ingest);
        let ingest = Killed(
            ingest
                .env("INGEST_ADDR", format!("127.0.0.1:{ingest_port}"))
                .spawn()?,
        );
        let projector_port = free_port();
        let mut projector = Command::new(args.bin_dir.join("projector"));
        env(&mut projector);
        if let Ok(filter) = std::env::var("BENCH_PROJECTOR_LOG") {
            projector.env("RUST_LOG", filter);
        }
        let projector = Killed(
            projector
                .env("PROJECTOR_ADDR", format!("127.0.0.1:{projector_port}"))
                .spawn()?,
        );
        for port in [ingest_port, projector_port] {
            crate::ingest::wait_ready(format!("127.0.0.1:{port}").parse()?, "/ready").await?;
        }
        Ok(Self {
            ingest_port,
            _running: [ingest, projector],
        })
    }
}

/// Posts `total` signed deliveries at `args.rate` per second, recording each mid
/// in `pending` as it is sent: the POST latencies and the count of failed POSTs.
async fn send_all(
    args: &Args,
    url: &str,
    total: u64,
    pending: &Pending,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let http = reqwest::Client::new();
    let secret = AppSecret::new(&SECRET.to_owned().into());
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let http_latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let errors = Arc::new(Mutex::new(0u64));
    let mut sends = Vec::with_capacity(total as usize);
    for seq in 0..total {
        tick.tick().await;
        let psid = format!("{}", 900_000 + seq % args.customers as u64);
        let mid = format!("m_e2e_{seq}");
        let body = delivery(&psid, &mid);
        let signature = secret.sign(body.as_bytes());
        let sent = Instant::now();
        pending
            .lock()
            .unwrap()
            .entry(psid)
            .or_default()
            .push((mid, sent));
        let (http, url, http_latency, errors) = (
            http.clone(),
            url.to_owned(),
            http_latency.clone(),
            errors.clone(),
        );
        sends.push(tokio::spawn(async move {
            let res = http
                .post(&url)
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {
                    let _ = http_latency
                        .lock()
                        .unwrap()
                        .record(sent.elapsed().as_micros() as u64);
                }
                _ => *errors.lock().unwrap() += 1,
            }
        }));
    }
    for s in sends {
        s.await?;
    }
    let latency = http_latency.lock().unwrap().clone();
    let errors = *errors.lock().unwrap();
    Ok((latency, errors))
}

fn delivery(psid: &str, mid: &str) -> String {
    format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":1697051234567,"messaging":[{{"sender":{{"id":"{psid}"}},"recipient":{{"id":"{PAGE}"}},"timestamp":1697051234567,"message":{{"mid":"{mid}","text":"hello from the benchmark"}}}}]}}]}}"#
    )
}

/// Watches the data directory; on every write of `conversations/<psid>.json`,
/// records the mids of that customer that the file now contains.
fn watch(
    dir: &Path,
    pending: Pending,
    latencies: Arc<Mutex<Histogram<u64>>>,
) -> anyhow::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let seen_at = Instant::now();
        for path in event.paths {
            let is_conversation = path.parent().and_then(Path::file_name)
                == Some("conversations".as_ref())
                && path.extension() == Some("json".as_ref());
            let Some(psid) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if !is_conversation {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let mut pending = pending.lock().unwrap();
            if let Some(waiting) = pending.get_mut(psid) {
                waiting.retain(|(mid, sent)| {
                    let found = text.contains(&format!("\"{mid}\""));
                    if found {
                        let _ = latencies
                            .lock()
                            .unwrap()
                            .record(seen_at.duration_since(*sent).as_micros() as u64);
                    }
                    !found
                });
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok(watcher)
}
