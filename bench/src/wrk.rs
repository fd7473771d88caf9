//! Drives a target with `wrk` (Debian package `wrk`): a C load generator that costs
//! far less CPU than the Rust one, on a box where client and server share two cores.
//!
//! wrk cannot sign requests, so unique signed deliveries are generated up front, one
//! file per wrk thread, and a Lua script replays them in order (each exactly once).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pagesync_schema::signature::AppSecret;

use crate::load::delivery;

pub const THREADS: usize = 2;

pub struct WrkResult {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub requests: u64,
}

const SCRIPT: &str = r#"
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  reqs = {}
  local f = assert(io.open(args[1] .. "/requests-" .. id .. ".txt", "r"))
  for line in f:lines() do
    local sig, bid, body = line:match("^(%S+)\t(%S+)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", "/facebook/webhook",
      {["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = sig, ["X-Bench-Id"] = bid}, body)
  end
  f:close()
  i = 0
end
function request()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
"#;

/// Writes `per_thread` unique signed deliveries for each wrk thread, and the script.
pub fn prepare(
    dir: &Path,
    run: &str,
    per_thread: usize,
    size: usize,
    secret: &AppSecret,
) -> anyhow::Result<()> {
    for t in 1..=THREADS {
        let mut out = String::with_capacity(per_thread * (size + 100));
        for seq in 0..per_thread {
            let body = delivery(run, t, seq as u64, size);
            writeln!(
                out,
                "{}\t{run}-{t}-{seq}\t{body}",
                secret.sign(body.as_bytes())
            )?;
        }
        std::fs::write(dir.join(format!("requests-{t}.txt")), out)?;
    }
    std::fs::write(dir.join("replay.lua"), SCRIPT)?;
    Ok(())
}

/// Runs wrk against `addr` and parses its report.
pub fn run(
    dir: &Path,
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<WrkResult> {
    let out = Command::new("wrk")
        .args(["-t", &THREADS.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs()), "--latency", "-s"])
        .arg(dir.join("replay.lua"))
        .arg(format!("http://{addr}/facebook/webhook"))
        .arg("--")
        .arg(dir)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    };
    let ms = |v: &str| -> f64 {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            _ => n,
        }
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(WrkResult {
        rate: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50_ms: field("50%").map(|v| ms(&v)).unwrap_or(f64::NAN),
        p99_ms: field("99%").map(|v| ms(&v)).unwrap_or(f64::NAN),
        errors: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            + field("Socket errors:").map_or(0, |v| {
                v.split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse::<u64>().ok())
                    .sum()
            }),
        requests,
    })
}
