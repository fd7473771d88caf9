//! `pagesync-bench sse`: live updates to many connected inbox clients.
//!
//! Starts the release `ingest`, `projector` and `oauth-api` binaries on a private
//! stream, database and data directory; connects `--clients` operator clients to
//! `GET /api/events`; sends signed one-message webhooks at `--rate` per second,
//! each with its own text; and measures, for every client and every webhook, the
//! time from the webhook's 200 to that client reading the event with its text.
//! oauth-api's resident memory is sampled meanwhile.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use pagesync_crypto::EncryptionKey;
use pagesync_runtime::config::parse_duration;
use pagesync_schema::signature::AppSecret;
use pagesync_testkit::private_nats::free_port;
use pagesync_testkit::{TestDb, TestNats};

use crate::api::OPERATOR;
use crate::e2e::Killed;

const SECRET: &str = "bench-app-secret";
const PAGE: &str = "101368371725791";
const MARK: &str = "sse-bench ";

#[derive(clap::Args)]
pub struct Args {
    /// Connected `EventSource` clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Webhooks per second, on a fixed schedule.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Distinct customers the webhooks are spread over.
    #[arg(long, default_value_t = 200)]
    customers: u32,
    #[arg(long, default_value = "target/release")]
    bin_dir: std::path::PathBuf,
}

/// When each webhook's 200 arrived, in µs since the start (0: not yet).
struct Answered {
    start: Instant,
    at: Vec<AtomicU64>,
}

impl Answered {
    fn since_answer(&self, seq: usize) -> u64 {
        let now = self.start.elapsed().as_micros() as u64;
        match self.at[seq].load(Ordering::Acquire) {
            0 => 0, // the event outran the 200 on its way back to the sender
            at => now.saturating_sub(at),
        }
    }
}

#[tokio::main]
pub async fn run(args: Args) -> anyhow::Result<()> {
    let nats = TestNats::new().await;
    nats.ensure_stream().await;
    let db = TestDb::new().await;
    let data = tempfile::tempdir()?;
    let (_, key) = EncryptionKey::generate();
    let ports = [free_port(), free_port(), free_port()];
    let mut children = Vec::new();
    for (bin, var, port) in [
        ("ingest", "INGEST_ADDR", ports[0]),
        ("projector", "PROJECTOR_ADDR", ports[1]),
        ("oauth-api", "OAUTH_API_ADDR", ports[2]),
    ] {
        let mut cmd = Command::new(args.bin_dir.join(bin));
        cmd.envs(nats.env())
            .env("DATABASE_URL", &db.url)
            .env("DATA_DIR", data.path())
            .env("FACEBOOK_APP_ID", "1234")
            .env("FACEBOOK_APP_SECRET", SECRET)
            .env("FACEBOOK_VERIFY_TOKEN", "bench")
            .env(
                "FACEBOOK_REDIRECT_URI",
                "http://127.0.0.1:5000/facebook/callback",
            )
            .env("STATE_TOKEN_SECRET", "bench-state-secret")
            .env("TOKEN_ENCRYPTION_KEY", &key)
            .env("OPERATOR_TOKEN", OPERATOR)
            .env("RUST_LOG", "warn")
            .env(var, format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null());
        children.push(Killed(cmd.spawn()?));
    }
    for port in ports {
        crate::ingest::wait_ready(format!("127.0.0.1:{port}").parse()?, "/ready").await?;
    }
    let api_pid = children[2].0.id();
    let rss_idle = rss_kib(api_pid)?;

    let total = (args.rate as f64 * args.duration.as_secs_f64()) as usize;
    let answered = Arc::new(Answered {
        start: Instant::now(),
        at: (0..total).map(|_| AtomicU64::new(0)).collect(),
    });
    let connected = Arc::new(AtomicUsize::new(0));
    let events_url = format!("http://127.0.0.1:{}/api/events", ports[2]);
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let (url, answered, connected) = (events_url.clone(), answered.clone(), connected.clone());
        // Until then each client waits for the events it has not seen yet.
        let until = tokio::time::Instant::now() + args.duration + Duration::from_secs(60);
        clients.push(tokio::spawn(client(url, answered, connected, total, until)));
    }
    while connected.load(Ordering::Acquire) < args.clients {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_connected = rss_kib(api_pid)?;
    let sampler = tokio::spawn(peak_rss(api_pid));

    let (sent_for, http) = send(&args, ports[0], total, answered.clone()).await?;
    let mut seen = Histogram::<u64>::new(3)?;
    let mut missing = 0;
    for c in clients {
        let (h, lost) = c.await?;
        seen.add(h)?;
        missing += lost;
    }
    sampler.abort();
    let rss_peak = rss_kib(api_pid)?;
    report(
        &args,
        total,
        sent_for,
        &seen,
        missing,
        &http,
        [rss_idle, rss_connected, rss_peak],
    );
    Ok(())
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?;
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

static PEAK_RSS: AtomicU64 = AtomicU64::new(0);

async fn peak_rss(pid: u32) {
    loop {
        if let Ok(kib) = rss_kib(pid) {
            PEAK_RSS.fetch_max(kib, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One client: reads the stream until it has seen every webhook's text (or the
/// stream ends); answers the latencies and how many it never saw.
async fn client(
    url: String,
    answered: Arc<Answered>,
    connected: Arc<AtomicUsize>,
    total: usize,
    until: tokio::time::Instant,
) -> (Histogram<u64>, usize) {
    let mut latency = Histogram::<u64>::new(3).expect("histogram");
    let mut seen = vec![false; total];
    let http = reqwest::Client::new();
    let resp = http
        .get(&url)
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("the event stream answers");
    assert_eq!(resp.status(), 200, "GET /api/events");
    connected.fetch_add(1, Ordering::Release);
    let mut resp = resp;
    let mut buf = Vec::new();
    let mut count = 0;
    while count < total {
        let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, resp.chunk()).await else {
            break;
        };
        buf.extend_from_slice(&chunk);
        // Every complete line of the stream; the rest waits for the next chunk.
        let mut start = 0;
        while let Some(end) = buf[start..].iter().position(|b| *b == b'\n') {
            if let Some(seq) = webhook_seq(&buf[start..start + end])
                && seq < total
                && !seen[seq]
            {
                seen[seq] = true;
                count += 1;
                latency
                    .record(answered.since_answer(seq))
                    .expect("in range");
            }
            start += end + 1;
        }
        buf.drain(..start);
    }
    (latency, total - count)
}

/// The webhook number in a `data:` line carrying a conversation whose last text
/// is one of ours.
fn webhook_seq(line: &[u8]) -> Option<usize> {
    let line = std::str::from_utf8(line).ok()?.strip_prefix("data:")?;
    let at = line.find(MARK)? + MARK.len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Sends the webhooks open-loop; answers how long sending took and the 200s' latency.
async fn send(
    args: &Args,
    ingest_port: u16,
    total: usize,
    answered: Arc<Answered>,
) -> anyhow::Result<(Duration, Histogram<u64>)> {
    let http = reqwest::Client::new();
    let secret = AppSecret::new(&SECRET.to_owned().into());
    let url = format!("http://127.0.0.1:{ingest_port}/facebook/webhook");
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sends = Vec::with_capacity(total);
    let base_ms = chrono::Utc::now().timestamp_millis();
    for seq in 0..total {
        tick.tick().await;
        let psid = 900_000 + seq as u64 % args.customers as u64;
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{ts},"messaging":[{{"sender":{{"id":"{psid}"}},"recipient":{{"id":"{PAGE}"}},"timestamp":{ts},"message":{{"mid":"m_sse_{seq}","text":"{MARK}{seq}"}}}}]}}]}}"#,
            ts = base_ms + seq as i64
        );
        let signature = secret.sign(body.as_bytes());
        let (http, url, answered) = (http.clone(), url.clone(), answered.clone());
        sends.push(tokio::spawn(async move {
            let sent = Instant::now();
            let res = http
                .post(&url)
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
                .await;
            let ok = res.is_ok_and(|r| r.status().is_success());
            let at = answered.start.elapsed().as_micros() as u64;
            answered.at[seq].store(at.max(1), Ordering::Release);
            ok.then(|| sent.elapsed().as_micros() as u64)
        }));
    }
    let mut http_latency = Histogram::<u64>::new(3)?;
    for s in sends {
        match s.await? {
            Some(us) => http_latency.record(us)?,
            None => anyhow::bail!("a webhook was not answered 200"),
        }
    }
    Ok((started.elapsed(), http_latency))
}

fn report(
    args: &Args,
    total: usize,
    sent_for: Duration,
    seen: &Histogram<u64>,
    missing: usize,
    http: &Histogram<u64>,
    [idle, connected, peak]: [u64; 3],
) {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let peak = peak.max(PEAK_RSS.load(Ordering::Relaxed));
    println!(
        "sse benchmark: {} clients, {total} webhooks at {}/s over {:.1} s, {} customers",
        args.clients,
        args.rate,
        sent_for.as_secs_f64(),
        args.customers
    );
    println!(
        "webhook 200 -> event at a client: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} deliveries, {missing} missing)",
        ms(seen, 0.5),
        ms(seen, 0.99),
        seen.max() as f64 / 1000.0,
        seen.len(),
    );
    println!(
        "webhook POST -> 200: p50 {:.1} ms  p99 {:.1} ms",
        ms(http, 0.5),
        ms(http, 0.99)
    );
    println!(
        "oauth-api RSS: {:.1} MiB idle, {:.1} MiB with the clients connected, {:.1} MiB peak",
        idle as f64 / 1024.0,
        connected as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}
