//! How fast one delivery is split into events: `cargo run --release -p
//! pagesync-ingest --example split_bench`. Prints deliveries/s for an ordinary
//! delivery of every item type (the fast path) and for the same delivery with
//! every text cut mid-emoji and a number out of range in each item (the lenient
//! reader). The machine is shared, so it reports the best of 30 windows of 100 ms
//! (the rate least disturbed by other work). With an argument N it instead splits
//! each delivery N times without timing, for `perf stat -e instructions:u`, whose
//! count a busy machine does not disturb. `instagram` is Meta-shaped Instagram
//! delivery of every item kind; `mixed` splits the Messenger and the Instagram
//! delivery in turn (a 50/50 mix, contract §8). Not run in CI.

use std::time::{Duration, Instant};

use pagesync_ingest::split::split;

const EVERY_TYPE: &str = include_str!("../tests/fixtures/every_type.json");
const INSTAGRAM: &str = include_str!("../tests/fixtures/instagram.json");

/// Deliveries split in turn, one after another.
type Bodies<'a> = [&'a [u8]];

fn rate(name: &str, bodies: &Bodies<'_>) {
    let now = chrono::Utc::now();
    let events: usize = bodies.iter().map(|b| split(b, now).len()).sum();
    let bytes: usize = bodies.iter().map(|b| b.len()).sum();
    repeat(bodies, 1_000);
    let window = || {
        let (start, mut runs) = (Instant::now(), 0u64);
        while start.elapsed() < Duration::from_millis(100) {
            repeat(bodies, 20);
            runs += 20 * bodies.len() as u64;
        }
        runs as f64 / start.elapsed().as_secs_f64()
    };
    let per_s = (0..30).map(|_| window()).fold(0.0, f64::max);
    let per_delivery = events as f64 / bodies.len() as f64;
    println!(
        "{name}: {per_s:.0} deliveries/s, {:.0} events/s ({events} events, {bytes} bytes)",
        per_s * per_delivery,
    );
}

/// Splits each of `bodies` `n` times: fixed work to count instructions over.
fn repeat(bodies: &Bodies<'_>, n: u64) {
    let now = chrono::Utc::now();
    for _ in 0..n {
        for body in bodies {
            std::hint::black_box(split(std::hint::black_box(body), now));
        }
    }
}

fn main() {
    let hostile = EVERY_TYPE
        .replace(r#""text":""#, r#""text":"\ud83d "#)
        .replace(r#""timestamp":"#, r#""n":1e400,"timestamp":"#);
    let (messenger, instagram) = (EVERY_TYPE.as_bytes(), INSTAGRAM.as_bytes());
    let runs: [(&str, &Bodies<'_>); 4] = [
        ("ordinary", &[messenger]),
        ("lone surrogates, 1e400", &[hostile.as_bytes()]),
        ("instagram", &[instagram]),
        ("mixed 50/50", &[messenger, instagram]),
    ];
    match std::env::args().nth(1).and_then(|n| n.parse::<u64>().ok()) {
        Some(n) => {
            let which = std::env::args().nth(2).unwrap_or_default();
            for (name, bodies) in runs.iter().filter(|(name, _)| name.starts_with(&which)) {
                // A mix splits each of its deliveries n/2 times: n deliveries in all.
                repeat(bodies, n / bodies.len() as u64);
                println!("{name}: split {n} deliveries");
            }
        }
        None => runs.iter().for_each(|(name, bodies)| rate(name, bodies)),
    }
}
