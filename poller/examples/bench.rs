//! Poll-cycle benchmark (issue 4): N pages × C conversations × M messages against the
//! fake Graph API with a fixed latency per call, real NATS and Postgres.
//!
//! `cargo run --release -p pagesync-poller --example bench -- <pages> <convs> <msgs> <latency ms> <concurrency>...`

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use pagesync_crypto::{EncryptionKey, OldKeys, TokenCipher};
use pagesync_fake_graph::{FakeGraph, FakeMessage};
use pagesync_poller::test_support::{self, GraphApp};
use pagesync_testkit::{TestDb, TestNats};

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (pages, convs, msgs, latency) = (args[0], args[1], args[2], args[3]);
    for &concurrency in &args[4..] {
        let (nats, db, fake) = (
            TestNats::new().await,
            TestDb::new().await,
            FakeGraph::start().await,
        );
        let (key, key_b64) = EncryptionKey::generate();
        let cipher = TokenCipher::new(key, OldKeys::default());
        let client = db.client().await;
        let t0 = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        for p in 0..pages {
            let page = format!("{}", 1_000_000 + p);
            let token = format!("tok-{p}");
            fake.add_page(&page, "Bench", &token);
            for c in 0..convs {
                for m in 0..msgs {
                    let t = t0 + chrono::Duration::seconds((c * msgs + m) as i64);
                    fake.add_message(
                        &page,
                        &format!("9{c}"),
                        FakeMessage::customer(&format!("m_{p}_{c}_{m}"), "hello", t),
                    );
                }
            }
            test_support::store_integration(&client, &cipher, &page, &token)
                .await
                .unwrap();
        }
        fake.set_latency(Duration::from_millis(latency));
        let base = fake.base_url();
        let graph = GraphApp::new(&base, FakeGraph::APP_ID, FakeGraph::APP_SECRET);
        let conc = concurrency.to_string();
        let flags = ["--poll-concurrency", &conc];
        let cfg = test_support::config(&graph, &key_b64, nats.config(), db.config(), &flags);
        let app = pagesync_poller::App::build(cfg).await.unwrap();
        let started = Instant::now();
        let report = app.run_cycle(None).await.unwrap();
        let wall = started.elapsed();
        let calls = fake.requests().len();
        println!(
            "pages={pages} conversations={convs} messages={msgs} latency={latency}ms concurrency={concurrency}: \
             wall={:.2}s calls={calls} calls/s={:.1} events stored={} all_ok={}",
            wall.as_secs_f64(),
            calls as f64 / wall.as_secs_f64(),
            report.stored(),
            report.all_succeeded()
        );
    }
}
