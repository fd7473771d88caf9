//! `pagesync-bench files`: webhook POST → the mid in the conversation file, for a
//! fresh conversation and for one of 10,000 messages, side by side (issue 14, "one
//! cost that grows with the work").
//!
//! Publishes the big conversation's backlog straight to the stream (fast), starts
//! the release `ingest` and `projector` binaries on a private stream, database and
//! data directory, waits until the backlog is in its file, then sends one signed
//! one-message webhook at a time, alternating a new customer and the big
//! conversation, each timed from the start of its POST until inotify reports a
//! write of that customer's file whose end holds the mid.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use notify::{RecursiveMode, Watcher};
use pagesync_schema::signature::AppSecret;
use pagesync_schema::{Event, EventId, EventType, PageId, Platform, Psid, Publisher, Source};
use pagesync_testkit::private_nats::free_port;
use pagesync_testkit::{TestDb, TestNats};

use crate::e2e::Killed;

const SECRET: &str = "bench-app-secret";
const PAGE: &str = "101368371725791";
const BIG: &str = "7000000";

#[derive(clap::Args)]
pub struct Args {
    /// Messages already in the big conversation.
    #[arg(long, default_value_t = 10_000)]
    messages: u32,
    /// Webhooks timed per conversation (after the warm-up).
    #[arg(long, default_value_t = 200)]
    rounds: u32,
    /// Webhooks per conversation sent first and not timed.
    #[arg(long, default_value_t = 10)]
    warmup: u32,
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
}

/// A text of some 180 characters, so 10,000 messages make a file of ~3.2 MB.
fn text(i: u32) -> String {
    format!(
        "hello from the benchmark, message {i}: {}",
        "lorem ipsum ".repeat(12)
    )
}

#[tokio::main]
pub async fn run(args: Args) -> anyhow::Result<()> {
    let nats = TestNats::new().await;
    nats.ensure_stream().await;
    let db = TestDb::new().await;
    let data = tempfile::tempdir()?;
    let start_ms = chrono::Utc::now().timestamp_millis() - 3_600_000;
    seed(&nats, args.messages, start_ms).await?;
    let (ingest_port, _services) = start(&args, &nats, &db, data.path()).await?;
    let dir = data
        .path()
        .join("facebook")
        .join(PAGE)
        .join("conversations");
    std::fs::create_dir_all(&dir)?;
    let (events, _watcher) = watch(data.path())?;
    let big_file = dir.join(format!("{BIG}.json"));
    let seeded = Instant::now();
    let last_seed = format!("m_seed_{}", args.messages - 1);
    wait_for(&events, &big_file, &last_seed, Duration::from_secs(600))?;
    println!(
        "seeded: {} messages in the big conversation, its file {:.1} MB ({:.1} s after start)",
        args.messages,
        std::fs::metadata(&big_file)?.len() as f64 / 1e6,
        seeded.elapsed().as_secs_f64()
    );

    let webhooks = Webhooks {
        http: reqwest::Client::new(),
        secret: AppSecret::new(&SECRET.to_owned().into()),
        url: format!("http://127.0.0.1:{ingest_port}/facebook/webhook"),
    };
    let mut fresh = Histogram::<u64>::new(3)?;
    let mut big = Histogram::<u64>::new(3)?;
    for round in 0..args.warmup + args.rounds {
        for (psid, histogram) in [
            (format!("{}", 8_000_000 + round), &mut fresh),
            (BIG.to_owned(), &mut big),
        ] {
            let mid = format!("m_files_{round}_{psid}");
            let path = dir.join(format!("{psid}.json"));
            while events.try_recv().is_ok() {}
            let sent = Instant::now();
            webhooks.send(&psid, &mid).await?;
            wait_for(&events, &path, &mid, Duration::from_secs(30))?;
            if round >= args.warmup {
                histogram.record(sent.elapsed().as_micros() as u64)?;
            }
        }
    }
    report(&args, &fresh, &big);
    Ok(())
}

/// Signed one-message deliveries to ingest.
struct Webhooks {
    http: reqwest::Client,
    secret: AppSecret,
    url: String,
}

impl Webhooks {
    async fn send(&self, psid: &str, mid: &str) -> anyhow::Result<()> {
        let body = delivery(psid, mid);
        let signature = self.secret.sign(body.as_bytes());
        let res = self
            .http
            .post(&self.url)
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(
            res.status().is_success(),
            "ingest answered {}",
            res.status()
        );
        Ok(())
    }
}

fn report(args: &Args, fresh: &Histogram<u64>, big: &Histogram<u64>) {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "files benchmark: {} webhooks per conversation, one at a time, alternating ({} warm-up each, not timed)",
        args.rounds, args.warmup
    );
    let big_name = format!("conversation of {} messages", args.messages);
    for (name, h) in [("fresh conversation", fresh), (big_name.as_str(), big)] {
        println!(
            "webhook POST -> mid in file, {name:32}: p50 {:.1} ms  p90 {:.1} ms  max {:.1} ms",
            ms(h, 0.5),
            ms(h, 0.9),
            h.max() as f64 / 1000.0
        );
    }
    println!(
        "ratio of the p50s: {:.2}",
        ms(big, 0.5) / ms(fresh, 0.5).max(1e-9)
    );
}

/// Publishes the big conversation's messages, a second apart, ending an hour ago.
async fn seed(nats: &TestNats, messages: u32, start_ms: i64) -> anyhow::Result<()> {
    let events: Vec<Event> = (0..messages)
        .map(|i| {
            let ts = start_ms - i64::from(messages - i) * 1000;
            let mid = format!("m_seed_{i}");
            let data = serde_json::json!({"sender": {"id": BIG}, "recipient": {"id": PAGE},
                "timestamp": ts, "message": {"mid": mid, "text": text(i)}});
            Ok(Event {
                id: EventId::parse(mid)?,
                event_type: EventType::Message,
                source: Source::Ingest,
                page_id: Some(PageId::parse(PAGE)?),
                psid: Some(Psid::parse(BIG)?),
                platform: Platform::Messenger,
                time: chrono::DateTime::from_timestamp_millis(ts).unwrap_or_default(),
                received_at: chrono::DateTime::from_timestamp_millis(ts).unwrap_or_default(),
                data: serde_json::value::to_raw_value(&data)?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let publisher = Publisher::new(nats.js.clone(), nats.prefix.clone());
    for chunk in events.chunks(5000) {
        publisher.publish_all(chunk, None).await?;
    }
    Ok(())
}

/// Starts ingest and the projector; returns ingest's port and the processes.
async fn start(
    args: &Args,
    nats: &TestNats,
    db: &TestDb,
    data: &Path,
) -> anyhow::Result<(u16, Vec<Killed>)> {
    let env = |cmd: &mut Command| {
        cmd.envs(nats.env())
            .env("DATABASE_URL", &db.url)
            .env("DATA_DIR", data)
            .env("FACEBOOK_APP_SECRET", SECRET)
            .env("FACEBOOK_VERIFY_TOKEN", "bench")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
    };
    let (ingest_port, projector_port) = (free_port(), free_port());
    let mut ingest = Command::new(args.bin_dir.join("ingest"));
    env(&mut ingest);
    ingest.env("INGEST_ADDR", format!("127.0.0.1:{ingest_port}"));
    let mut projector = Command::new(args.bin_dir.join("projector"));
    env(&mut projector);
    projector.env("PROJECTOR_ADDR", format!("127.0.0.1:{projector_port}"));
    let services = vec![Killed(ingest.spawn()?), Killed(projector.spawn()?)];
    for port in [ingest_port, projector_port] {
        crate::ingest::wait_ready(format!("127.0.0.1:{port}").parse()?, "/ready").await?;
    }
    Ok((ingest_port, services))
}

fn delivery(psid: &str, mid: &str) -> String {
    let ts = chrono::Utc::now().timestamp_millis();
    format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{ts},"messaging":[{{"sender":{{"id":"{psid}"}},"recipient":{{"id":"{PAGE}"}},"timestamp":{ts},"message":{{"mid":"{mid}","text":"{}"}}}}]}}]}}"#,
        text(0)
    )
}

/// Every path inotify reports written under `dir`.
fn watch(dir: &Path) -> anyhow::Result<(mpsc::Receiver<PathBuf>, notify::RecommendedWatcher)> {
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok((rx, watcher))
}

/// Waits until a write of `path` ends with `mid` (the newest item is last).
fn wait_for(
    events: &mpsc::Receiver<PathBuf>,
    path: &Path,
    mid: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let needle = format!("\"{mid}\"");
    loop {
        if tail_contains(path, &needle) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(_) => {}
            Err(_) => anyhow::bail!("{mid} did not reach {} in {limit:?}", path.display()),
        }
    }
}

/// Whether the last 8 KiB of the file hold `needle` (a missing file does not).
fn tail_contains(path: &Path, needle: &str) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file
        .seek(SeekFrom::Start(len.saturating_sub(8192)))
        .is_err()
    {
        return false;
    }
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).is_ok()
        && tail.windows(needle.len()).any(|w| w == needle.as_bytes())
}
