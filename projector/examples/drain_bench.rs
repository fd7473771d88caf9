//! Benchmark (issue 3): drain 50,000 pre-published events across 10 pages and
//! 1,000 conversations and report events/s and the time until the last file is written.
//!
//! `cargo run --release -p pagesync-projector --example drain_bench [events] [batch size]`
//! (batch size defaults to `PROJECTOR_BATCH_SIZE`'s default).
//! `... --example drain_bench rebuild [events]` instead times `projector rebuild` of the
//! published events (the same mix).
//! against the NATS and Postgres at `NATS_URL` / `DATABASE_URL` (own stream and database).

use std::time::Instant;

use pagesync_projector::{App, Config};
use pagesync_runtime::CancellationToken;
use pagesync_schema::{Event, EventId, EventType, PageId, Psid, Publisher, Source};
use pagesync_testkit::{TestDb, TestNats};
use serde_json::json;

const T: i64 = 1_700_000_000_000;

fn event(i: usize) -> Event {
    let page = format!("{}", 1_000_000 + i % 10);
    let psid = format!("{}", 2_000_000 + (i / 10) % 100);
    let ts = T + i as i64;
    let (ty, id, data) = match i % 20 {
        0 => (
            EventType::Delivery,
            format!("delivery:{page}:{psid}:{ts}"),
            json!({"sender": {"id": psid}, "recipient": {"id": page}, "delivery": {"watermark": ts}}),
        ),
        1 => (
            EventType::Read,
            format!("read:{page}:{psid}:{ts}"),
            json!({"sender": {"id": psid}, "recipient": {"id": page}, "read": {"watermark": ts}}),
        ),
        2 | 3 => (
            EventType::MessageEcho,
            format!("m_{i}"),
            json!({"sender": {"id": page}, "recipient": {"id": psid}, "timestamp": ts,
                   "message": {"mid": format!("m_{i}"), "text": "Thanks, we are on it", "is_echo": true}}),
        ),
        _ => (
            EventType::Message,
            format!("m_{i}"),
            json!({"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": ts,
                   "message": {"mid": format!("m_{i}"), "text": format!("Hello, message {i}")}}),
        ),
    };
    Event {
        id: EventId::parse(id).unwrap(),
        event_type: ty,
        source: Source::Ingest,
        page_id: Some(PageId::parse(page).unwrap()),
        psid: Some(Psid::parse(psid).unwrap()),
        platform: pagesync_schema::Platform::Messenger,
        time: chrono::DateTime::from_timestamp_millis(ts).unwrap(),
        received_at: chrono::DateTime::from_timestamp_millis(ts).unwrap(),
        data: serde_json::value::to_raw_value(&data).unwrap(),
    }
}

#[tokio::main]
async fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut args = std::env::args().skip(1).peekable();
    let rebuild = args.next_if(|a| a == "rebuild").is_some();
    let total: usize = args
        .next()
        .map_or(50_000, |a| a.parse().expect("event count"));
    let batch: Option<u32> = args.next().map(|a| a.parse().expect("batch size"));
    let nats = TestNats::new().await;
    nats.ensure_stream().await;
    let db = TestDb::new().await;
    let dir = pagesync_testkit::temp_dir();

    let publisher = Publisher::new(nats.js.clone(), nats.prefix.clone());
    let publish_started = Instant::now();
    for start in (0..total).step_by(5000) {
        let chunk: Vec<Event> = (start..total.min(start + 5000)).map(event).collect();
        publisher.publish_all(&chunk, None).await.expect("publish");
    }
    eprintln!(
        "published {total} events in {:.1} s",
        publish_started.elapsed().as_secs_f64()
    );

    let mut config: Config =
        pagesync_runtime::config::parse_from::<Config, _, _>(["projector"]).unwrap();
    config.nats = nats.config();
    config.database = db.config();
    config.data_dir = dir.path().to_owned();
    config.projector_addr = "127.0.0.1:0".parse().unwrap();
    if let Some(batch) = batch {
        config.projector_batch_size = batch;
        config.projector_max_ack_pending = i64::from(batch) * 20;
    }
    let batch = config.projector_batch_size;
    if rebuild {
        let app = App::build(config).await.expect("projector builds");
        let report = app
            .rebuild(CancellationToken::new())
            .await
            .expect("rebuild");
        println!(
            "projector rebuild: {} events in {:.1} s = {:.0} events/s (batch size {batch}, {} files)",
            report.events,
            report.took.as_secs_f64(),
            report.events as f64 / report.took.as_secs_f64(),
            walk(dir.path()),
        );
        return;
    }
    let app = App::build(config).await.expect("projector builds");

    let started = Instant::now();
    let started_at = std::time::SystemTime::now();
    let report = app.drain(CancellationToken::new()).await.expect("drain");
    let took = started.elapsed();

    let files = walk(dir.path());
    // The newest file's modification time: the drain returns a little later, once
    // it has seen its acknowledgements processed.
    let last_file = newest(dir.path())
        .and_then(|t| t.duration_since(started_at).ok())
        .unwrap_or(took);
    println!(
        "projector drain: {} events in {:.2} s = {:.0} events/s (batch size {batch}, {} batches, {} files, time to last file {:.2} s = {:.0} events/s)",
        report.messages,
        took.as_secs_f64(),
        report.messages as f64 / took.as_secs_f64(),
        report.batches,
        files,
        last_file.as_secs_f64(),
        report.messages as f64 / last_file.as_secs_f64(),
    );
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn newest(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            if e.path().is_dir() {
                newest(&e.path())
            } else {
                e.metadata().and_then(|m| m.modified()).ok()
            }
        })
        .max()
}
