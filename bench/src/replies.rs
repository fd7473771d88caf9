//! `pagesync-bench replies`: inbox replies per second through an in-process
//! oauth-api against the fake Graph API's Send API with a fixed latency, on a
//! private database and stream of the local Postgres and NATS.
//!
//! Every reply takes the whole path: tenancy and window queries, the token
//! decrypted, the Send API call, the `message_echo` published and acknowledged,
//! and (by default) an `Idempotency-Key` reserved and completed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use hdrhistogram::Histogram;
use pagesync_fake_graph::{FakeGraph, FakeMessage};
use pagesync_runtime::CancellationToken;
use pagesync_runtime::config::parse_duration;
use pagesync_testkit::{TestDb, TestNats};
use serde_json::json;

use crate::api::OPERATOR;

const PAGE: &str = "101368371725791";
const TOKEN: &str = "EAAB-bench-page-token";

#[derive(clap::Args)]
pub struct Args {
    /// Replies in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Replies to send in the measured run.
    #[arg(long, default_value_t = 10_000)]
    replies: u64,
    /// The fake Send API's latency.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    send_latency: Duration,
    /// Send without an Idempotency-Key.
    #[arg(long)]
    no_idempotency_key: bool,
    /// oauth-api's database pool.
    #[arg(long, default_value_t = 16)]
    pool_size: usize,
}

#[tokio::main]
pub async fn run(args: Args) -> anyhow::Result<()> {
    let (nats, db, fake) = (
        TestNats::new().await,
        TestDb::new().await,
        FakeGraph::start().await,
    );
    nats.ensure_stream().await;
    fake.add_page(PAGE, "Bench Page", TOKEN);
    let stop = CancellationToken::new();
    let base = crate::api::start(args.pool_size, &nats, &db, &fake, stop.clone()).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let put = http
        .put(format!("{base}/api/integrations/facebook/{PAGE}"))
        .bearer_auth(OPERATOR)
        .json(&json!({"access_token": TOKEN, "active": true}))
        .send()
        .await?;
    anyhow::ensure!(
        put.status().is_success(),
        "connecting the page: {}",
        put.status()
    );
    let customers = (args.concurrency * 4) as u64;
    seed_conversations(&db, &fake, customers).await?;
    fake.set_latency(args.send_latency);

    let started = Instant::now();
    let result = drive(&args, &http, &base, customers).await;
    let elapsed = started.elapsed();
    stop.cancel();
    let (ok, errors, latency) = result?;
    let echoes = nats.message_count().await;
    println!(
        "| {} | {} | {:?} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {} / {} | {} |",
        args.concurrency,
        if args.no_idempotency_key { "no" } else { "yes" },
        args.send_latency,
        args.replies,
        ok as f64 / elapsed.as_secs_f64(),
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
        ok,
        errors,
        echoes,
    );
    Ok(())
}

/// `customers` conversations whose customer wrote a minute ago, in the database
/// (as the projector stores them) and in the fake (for its window check).
async fn seed_conversations(db: &TestDb, fake: &FakeGraph, customers: u64) -> anyhow::Result<()> {
    let at = Utc::now() - chrono::Duration::minutes(1);
    let client = db.client().await;
    for i in 0..customers {
        let psid = format!("bench-{i}");
        fake.add_message(
            PAGE,
            &psid,
            FakeMessage::customer(&format!("m_in_{i}"), "hi", at),
        );
        client
            .execute(
                // last_in_ms as the projector keeps it: the reply window is read from it.
                "INSERT INTO conversations (page_id, psid, last_in_ms) VALUES ($1, $2, $3)",
                &[&PAGE, &psid, &at.timestamp_millis()],
            )
            .await?;
        client
            .execute(
                "INSERT INTO conversation_events (item_id, page_id, psid, event_type, source,
                     source_rank, timestamp_ms, in_file, data, stream_seq, direction, text)
                 VALUES ($1, $2, $3, 'message', 'pagesync/ingest', 0, $4, true, '{}', 0, 'in', 'hi')",
                &[&format!("m_in_{i}"), &PAGE, &psid, &at.timestamp_millis()],
            )
            .await?;
    }
    Ok(())
}

type Drive = (u64, u64, Histogram<u64>);

/// `concurrency` workers, each sending its next reply when the last is answered.
async fn drive(
    args: &Args,
    http: &reqwest::Client,
    base: &str,
    customers: u64,
) -> anyhow::Result<Drive> {
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (next, http, base) = (next.clone(), http.clone(), base.to_owned());
        let (total, keyed) = (args.replies, !args.no_idempotency_key);
        workers.push(tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new(3).expect("histogram");
            let (mut ok, mut errors) = (0u64, 0u64);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return (ok, errors, latency);
                }
                let url = format!(
                    "{base}/api/conversations/{PAGE}/bench-{}/messages",
                    n % customers
                );
                let mut req = http
                    .post(url)
                    .bearer_auth(OPERATOR)
                    .json(&json!({"text": "thanks!"}));
                if keyed {
                    req = req.header("idempotency-key", format!("bench-{n}"));
                }
                let t = Instant::now();
                match req.send().await {
                    Ok(r) if r.status() == 201 => ok += 1,
                    failed => {
                        if errors == 0 {
                            eprintln!("first failed reply of a worker: {failed:?}");
                        }
                        errors += 1
                    }
                }
                latency
                    .record(t.elapsed().as_micros() as u64)
                    .expect("in range");
            }
        }));
    }
    let mut all = (0, 0, Histogram::<u64>::new(3)?);
    for w in workers {
        let (ok, errors, latency) = w.await?;
        all.0 += ok;
        all.1 += errors;
        all.2.add(latency)?;
    }
    Ok(all)
}
