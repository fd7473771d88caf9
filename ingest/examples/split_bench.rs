//! How fast one delivery is split into events: `cargo run --release -p
//! pagesync-ingest --example split_bench`. Prints deliveries/s for an ordinary
//! delivery of every item type (the fast path) and for the same delivery with
//! every text cut mid-emoji and a number out of range in each item (the lenient
//! reader). The machine is shared, so it reports the best of 30 windows of 100 ms
//! (the rate least disturbed by other work). With an argument N it instead splits
//! each delivery N times without timing, for `perf stat -e instructions:u`, whose
//! count a busy machine does not disturb. Not run in CI.

use std::time::{Duration, Instant};

use pagesync_ingest::split::split;

const EVERY_TYPE: &str = include_str!("../tests/fixtures/every_type.json");

fn rate(name: &str, body: &[u8]) {
    let now = chrono::Utc::now();
    let events = split(body, now).len();
    for _ in 0..1_000 {
        std::hint::black_box(split(body, now));
    }
    let window = || {
        let (start, mut runs) = (Instant::now(), 0u64);
        while start.elapsed() < Duration::from_millis(100) {
            for _ in 0..20 {
                std::hint::black_box(split(std::hint::black_box(body), now));
            }
            runs += 20;
        }
        runs as f64 / start.elapsed().as_secs_f64()
    };
    let per_s = (0..30).map(|_| window()).fold(0.0, f64::max);
    println!(
        "{name}: {per_s:.0} deliveries/s, {:.0} events/s ({events} events, {} bytes)",
        per_s * events as f64,
        body.len()
    );
}

/// Splits `body` `n` times: fixed work to count instructions over.
fn repeat(body: &[u8], n: u64) {
    let now = chrono::Utc::now();
    for _ in 0..n {
        std::hint::black_box(split(std::hint::black_box(body), now));
    }
}

fn main() {
    let hostile = EVERY_TYPE
        .replace(r#""text":""#, r#""text":"\ud83d "#)
        .replace(r#""timestamp":"#, r#""n":1e400,"timestamp":"#);
    let bodies = [
        ("ordinary", EVERY_TYPE),
        ("lone surrogates, 1e400", &hostile),
    ];
    match std::env::args().nth(1).and_then(|n| n.parse().ok()) {
        Some(n) => {
            let which = std::env::args().nth(2).unwrap_or_default();
            for (name, body) in bodies.iter().filter(|(name, _)| name.starts_with(&which)) {
                repeat(body.as_bytes(), n);
                println!("{name}: split {n} times");
            }
        }
        None => bodies
            .iter()
            .for_each(|(name, body)| rate(name, body.as_bytes())),
    }
}
