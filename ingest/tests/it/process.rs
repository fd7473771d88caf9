//! The `ingest` binary itself: configuration errors and graceful shutdown.

use std::process::{Command, Stdio};
use std::time::Duration;

use pagesync_testkit::{TestNats, private_nats::free_port, wait};

fn ingest() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ingest"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(pagesync_testkit::temp_dir().keep());
    cmd
}

#[test]
fn a_missing_variable_stops_the_process_with_one_line_naming_it() {
    let out = ingest().env("FACEBOOK_APP_SECRET", "s").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("FACEBOOK_VERIFY_TOKEN"), "{stderr}");
}

#[test]
fn a_malformed_variable_is_named_without_echoing_its_value() {
    let out = ingest()
        .env("FACEBOOK_APP_SECRET", "s")
        .env("FACEBOOK_VERIFY_TOKEN", "t")
        .env("INGEST_MAX_BODY_BYTES", "lots-of-secret-bytes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("INGEST_MAX_BODY_BYTES"), "{stderr}");
    assert!(!stderr.contains("lots-of-secret-bytes"), "{stderr}");
}

#[test]
fn deadlines_the_request_timeout_cannot_hold_stop_the_process_with_status_2() {
    let out = ingest()
        .env("FACEBOOK_APP_SECRET", "s")
        .env("FACEBOOK_VERIFY_TOKEN", "t")
        .env("INGEST_BODY_TIMEOUT", "2s")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("HTTP_REQUEST_TIMEOUT"), "{stderr}");
}

#[tokio::test]
async fn sigterm_stops_the_binary_gracefully_with_exit_code_zero() {
    let nats = TestNats::new().await;
    let port = free_port();
    let child = ingest()
        .envs(nats.env())
        .env("FACEBOOK_APP_SECRET", "the-app-secret-value")
        .env("FACEBOOK_VERIFY_TOKEN", "the-verify-token-value")
        .env("INGEST_ADDR", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/health");
    wait::until(Duration::from_secs(20), "ingest /health answers", || {
        let health = health.clone();
        async move {
            reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;

    let status = terminate(child).await;
    assert!(status.0.success(), "exit: {:?}\n{}", status.0, status.1);
    assert!(
        !status.1.contains("the-app-secret-value") && !status.1.contains("the-verify-token-value")
    );
}

#[test]
fn a_malformed_dotenv_file_stops_the_process_without_echoing_its_lines() {
    let dir = pagesync_testkit::temp_dir();
    std::fs::write(
        dir.path().join(".env"),
        "FACEBOOK_APP_SECRET=\"an-unterminated-secret-value\nFACEBOOK_VERIFY_TOKEN=t\n",
    )
    .unwrap();
    let out = ingest().current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(".env"), "{stderr}");
    assert!(!stderr.contains("an-unterminated-secret-value"), "{stderr}");
}

#[test]
fn variables_from_a_dotenv_file_are_read() {
    let dir = pagesync_testkit::temp_dir();
    // Everything but one required variable: the error proves the others were read.
    std::fs::write(dir.path().join(".env"), "FACEBOOK_APP_SECRET=from-dotenv\n").unwrap();
    let out = ingest().current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("FACEBOOK_VERIFY_TOKEN"), "{stderr}");
    assert!(!stderr.contains("FACEBOOK_APP_SECRET"), "{stderr}");
}

/// A stand-in OTLP/HTTP collector: keeps every body POSTed to /v1/traces.
async fn fake_collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body.to_vec());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_otlp_endpoint_spans_are_exported_without_secrets() {
    let nats = TestNats::new().await;
    let (collector, received) = fake_collector().await;
    let port = free_port();
    let child = ingest()
        .envs(nats.env())
        .env("FACEBOOK_APP_SECRET", "the-app-secret-value")
        .env("FACEBOOK_VERIFY_TOKEN", "the-verify-token-value")
        .env("INGEST_ADDR", format!("127.0.0.1:{port}"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait::until(Duration::from_secs(20), "ingest /health answers", || {
        let url = format!("{base}/health");
        async move {
            reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    let handshake = format!(
        "{base}/facebook/webhook?hub.mode=subscribe&hub.verify_token=the-verify-token-value&hub.challenge=1"
    );
    assert!(
        reqwest::get(&handshake)
            .await
            .unwrap()
            .status()
            .is_success()
    );

    // Spans are batched; the exporter flushes on graceful shutdown.
    let status = terminate(child).await;
    assert!(status.0.success(), "{}", status.1);

    let bodies = received.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "no spans reached the collector");
    let all: Vec<u8> = bodies.concat();
    let contains = |needle: &str| all.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains("/facebook/webhook"),
        "the request span is not in the export"
    );
    assert!(!contains("the-verify-token-value"));
    assert!(!contains("the-app-secret-value"));
}

/// Sends SIGTERM and waits for the exit, returning the status and what the
/// process wrote to stderr (empty when stderr was not piped).
async fn terminate(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut logs = String::new();
        if let Some(stderr) = child.stderr.as_mut() {
            std::io::Read::read_to_string(stderr, &mut logs).unwrap();
        }
        (status, logs)
    })
    .await
    .unwrap()
}
