//! A closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending
//! its next request when the previous answer arrives.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use pagesync_schema::signature::AppSecret;

pub struct LoadResult {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    pub fn p(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

/// A signed delivery of about `size` bytes with a unique mid.
pub fn delivery(run: &str, conn: usize, seq: u64, size: usize) -> String {
    let mid = format!("m_{run}_{conn}_{seq}");
    let head = format!(
        r#"{{"object":"page","entry":[{{"id":"101368371725791","time":1697051234567,"messaging":[{{"sender":{{"id":"123456789"}},"recipient":{{"id":"101368371725791"}},"timestamp":1697051234567,"message":{{"mid":"{mid}","text":""#
    );
    let tail = r#""}}]}]}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

pub async fn run(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    body_size: usize,
    secret: &AppSecret,
    run_id: &str,
) -> anyhow::Result<LoadResult> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let (secret, run_id) = (secret.clone(), run_id.to_owned());
        tasks.push(tokio::spawn(async move {
            connection(addr, conn, deadline, body_size, &secret, &run_id).await
        }));
    }
    let mut total = LoadResult {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new(3)?,
    };
    for task in tasks {
        let (ok, errors, hist) = task.await??;
        total.ok += ok;
        total.errors += errors;
        total.latency_us.add(hist)?;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

async fn connection(
    addr: SocketAddr,
    conn: usize,
    deadline: Instant,
    body_size: usize,
    secret: &AppSecret,
    run_id: &str,
) -> anyhow::Result<(u64, u64, Histogram<u64>)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(driver);
    let mut hist = Histogram::<u64>::new(3)?;
    let (mut ok, mut errors, mut seq) = (0, 0, 0u64);
    while Instant::now() < deadline {
        seq += 1;
        let body = delivery(run_id, conn, seq, body_size);
        let request = hyper::Request::post(format!("http://{addr}/facebook/webhook"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", secret.sign(body.as_bytes()))
            .header("x-bench-id", format!("{run_id}-{conn}-{seq}"))
            .body(Full::new(Bytes::from(body)))?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        hist.record(sent.elapsed().as_micros() as u64)?;
        if status == hyper::StatusCode::OK {
            ok += 1;
        } else {
            errors += 1;
        }
    }
    Ok((ok, errors, hist))
}
