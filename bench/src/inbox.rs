//! `pagesync-bench inbox`: the inbox's read routes under concurrent clients, on
//! 10 pages, 100,000 conversations and 1,000,000 messages (bench/sql/inbox_seed.sql)
//! in a private database, through an in-process oauth-api.
//!
//! Each query kind runs alone for `--duration` with `--clients` closed-loop
//! clients; every answer must be 200 with a non-empty `data`, else it counts as
//! an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use pagesync_fake_graph::FakeGraph;
use pagesync_runtime::CancellationToken;
use pagesync_runtime::config::parse_duration;
use pagesync_testkit::{TestDb, TestNats};
use serde_json::Value;

use crate::api::OPERATOR;

const SEED: &str = include_str!("../sql/inbox_seed.sql");

#[derive(clap::Args)]
pub struct Args {
    /// Concurrent closed-loop clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// How long each query kind is driven.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// oauth-api's database pool.
    #[arg(long, default_value_t = 16)]
    pool_size: usize,
    /// Only the kinds whose name contains this (e.g. `q` or `messages`).
    #[arg(long)]
    only: Option<String>,
}

/// One kind of request and the URLs its clients cycle through.
struct Kind {
    name: &'static str,
    urls: Vec<String>,
}

#[tokio::main]
pub async fn run(args: Args) -> anyhow::Result<()> {
    let (nats, db, fake) = (
        TestNats::new().await,
        TestDb::new().await,
        FakeGraph::start().await,
    );
    nats.ensure_stream().await;
    let seeding = Instant::now();
    db.client().await.batch_execute(SEED).await?;
    eprintln!("seeded in {:.0?}", seeding.elapsed());
    let stop = CancellationToken::new();
    let base = crate::api::start(args.pool_size, &nats, &db, &fake, stop.clone()).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let kinds = kinds(&http, &base).await?;
    println!("| query | clients | requests/s | p50 | p99 | max | errors |");
    println!("|---|---|---|---|---|---|---|");
    for kind in kinds {
        if args.only.as_deref().is_some_and(|o| !kind.name.contains(o)) {
            continue;
        }
        let (done, errors, latency, elapsed) = drive(&args, &http, &kind).await?;
        println!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
            kind.name,
            args.clients,
            done as f64 / elapsed.as_secs_f64(),
            latency.value_at_quantile(0.5) as f64 / 1000.0,
            latency.value_at_quantile(0.99) as f64 / 1000.0,
            latency.max() as f64 / 1000.0,
            errors,
        );
    }
    stop.cancel();
    Ok(())
}

/// The URLs of each kind. Deep cursors are real ones, collected by walking the
/// list 50 at a time from the top to past row 50,000.
async fn kinds(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<Kind>> {
    let list = format!("{base}/api/conversations?limit=50");
    let (mut cursors, mut names) = (Vec::new(), Vec::new());
    let mut answer = get(http, &list).await?;
    for row in (50..=55_000).step_by(50) {
        // The seeded names are `Customer <md5 hex>`: search by 8 of its digits.
        if row % 500 == 0 {
            let name = answer["data"][0]["customer_name"].as_str().expect("a name");
            names.push(name.trim_start_matches("Customer ")[4..12].to_owned());
        }
        let cursor = answer["next_cursor"]
            .as_str()
            .expect("a next cursor")
            .to_owned();
        if row >= 40_000 {
            cursors.push(cursor.clone());
        }
        answer = get(http, &format!("{list}&cursor={cursor}")).await?;
    }
    let page = |p: usize| format!("{base}/api/conversations?limit=50&page_id=page{p}");
    let messages = |c: usize| {
        format!(
            "{base}/api/conversations/page{}/c{c}/messages?limit=50",
            c % 10
        )
    };
    Ok(vec![
        Kind {
            name: "list, first page",
            urls: vec![list.clone()],
        },
        Kind {
            name: "list, one page_id",
            urls: (0..10).map(page).collect(),
        },
        Kind {
            name: "list, deep cursor (rows 40,000-55,000)",
            urls: cursors
                .iter()
                .map(|c| format!("{list}&cursor={c}"))
                .collect(),
        },
        Kind {
            name: "messages, limit 50",
            urls: (0..1000).map(|i| messages(i * 97)).collect(),
        },
        Kind {
            name: "list, q = a customer name",
            urls: names.iter().map(|n| format!("{list}&q={n}")).collect(),
        },
        Kind {
            name: "list, q = one conversation's text",
            urls: (0..100)
                .map(|c| format!("{list}&q=conversation%20{}%20", c * 997))
                .collect(),
        },
        Kind {
            name: "list, q matching every conversation",
            urls: vec![format!("{list}&q=message%203")],
        },
    ])
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let resp = http.get(url).bearer_auth(OPERATOR).send().await?;
    anyhow::ensure!(resp.status() == 200, "{url}: {}", resp.status());
    Ok(resp.json().await?)
}

type Drive = (u64, u64, Histogram<u64>, Duration);

async fn drive(args: &Args, http: &reqwest::Client, kind: &Kind) -> anyhow::Result<Drive> {
    let urls = Arc::new(kind.urls.clone());
    let next = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + args.duration;
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let (urls, next, http) = (urls.clone(), next.clone(), http.clone());
        clients.push(tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new(3).expect("histogram");
            let (mut done, mut errors) = (0u64, 0u64);
            while Instant::now() < until {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let url = &urls[n % urls.len()];
                let t = Instant::now();
                match get(&http, url).await {
                    Ok(v) if v["data"].as_array().is_some_and(|d| !d.is_empty()) => done += 1,
                    _ => errors += 1,
                }
                latency
                    .record(t.elapsed().as_micros() as u64)
                    .expect("in range");
            }
            (done, errors, latency)
        }));
    }
    let mut all = (0, 0, Histogram::<u64>::new(3)?);
    for c in clients {
        let (done, errors, latency) = c.await?;
        all.0 += done;
        all.1 += errors;
        all.2.add(latency)?;
    }
    Ok((all.0, all.1, all.2, started.elapsed()))
}
