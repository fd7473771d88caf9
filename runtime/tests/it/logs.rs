//! The log output of a real process: this test binary runs its own `log_child`
//! test as a child with stderr sent to a file, as a service's log is redirected.

use std::process::{Command, Stdio};

use pagesync_runtime::telemetry::{self, LogFormat, TelemetryConfig};

/// Runs `log_child` with `LOG_FORMAT=format` and stderr to a file; that file's bytes.
fn child_log(format: &str) -> Vec<u8> {
    let dir = pagesync_testkit::temp_dir();
    let path = dir.path().join("stderr.log");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["logs::log_child", "--exact", "--ignored", "--nocapture"])
        .env("LOG_FORMAT", format)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&path).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    std::fs::read(&path).unwrap()
}

#[test]
#[ignore = "the child process of the log tests, run by them"]
fn log_child() {
    let log_format = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        _ => LogFormat::Pretty,
    };
    let cfg = TelemetryConfig {
        log_format,
        otel_exporter_otlp_endpoint: None,
    };
    let _guard = telemetry::init("log-test", &cfg).unwrap();
    tracing::info!(marker = "outside", "no span");
    tracing::info_span!("job", page_id = "1001").in_scope(|| {
        tracing::warn!(marker = "inside", "in a span");
    });
}

#[test]
fn pretty_logs_sent_to_a_file_hold_no_colour_escapes() {
    let log = child_log("pretty");
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("in a span"), "{text}");
    assert!(text.contains("job"), "the span is named: {text}");
    assert!(!log.contains(&0x1b), "an ANSI escape in {text:?}");
}

#[test]
fn json_logs_carry_the_trace_and_span_ids_of_their_span() {
    let log = child_log("json");
    let lines: Vec<serde_json::Value> = String::from_utf8(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let by_marker = |m: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["marker"] == m)
            .unwrap_or_else(|| panic!("no {m} line in {lines:?}"))
    };
    let inside = by_marker("inside");
    let trace = inside["trace_id"].as_str().expect("trace_id");
    let span = inside["span_id"].as_str().expect("span_id");
    assert_eq!((trace.len(), span.len()), (32, 16), "{inside}");
    assert!(trace.bytes().all(|b| b.is_ascii_hexdigit()) && trace != "0".repeat(32));
    assert_eq!(inside["span"]["name"], "job");
    let outside = by_marker("outside");
    assert!(outside.get("trace_id").is_none(), "{outside}");
}
