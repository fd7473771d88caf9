use std::sync::{Mutex, Once};

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;

use crate::app::{TestApp, message_delivery};

/// Everything the test binary logs once tracing is installed, spans included.
static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;
impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test binary, what `OTEL_EXPORTER_OTLP_ENDPOINT` installs in
/// a real process, minus the exporter, plus a log capture at TRACE that records
/// every span's fields. Other tests only gain a traceparent header.
fn install_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("ingest-test"));
        let capture = tracing_subscriber::fmt::layer()
            .with_writer(|| Capture)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
            .with_ansi(false);
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("trace"))
            .with(capture)
            .with(layer);
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
    });
}

#[tokio::test]
async fn with_tracing_on_every_published_event_carries_the_requests_traceparent() {
    install_tracing();
    let nats = pagesync_testkit::TestNats::new().await;
    let mut config = crate::app::config(&nats);
    // Only read by App::build to choose the request span's level; nothing is exported.
    config.telemetry.otel_exporter_otlp_endpoint = Some("http://127.0.0.1:4318".to_owned());
    let app = TestApp::spawn_with(nats, config).await;
    let body = r#"{"object":"page","entry":[{"id":"101","time":1,"changes":[{"field":"name","value":"A"},{"field":"name","value":"B"}]}]}"#;
    assert!(app.post_signed(body).await.status().is_success());
    assert!(
        app.post_signed(message_delivery("m_traced"))
            .await
            .status()
            .is_success()
    );

    let stored = app.nats.messages().await;
    assert_eq!(stored.len(), 3);
    let parents: Vec<&str> = stored
        .iter()
        .map(|m| m.traceparent.as_deref().expect("traceparent"))
        .collect();
    for tp in &parents {
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len()),
            ("00", 32, 16),
            "{tp}"
        );
    }
    assert_eq!(parents[0], parents[1], "one delivery, one request span");
    assert_ne!(
        parents[0].split('-').nth(1),
        parents[2].split('-').nth(1),
        "two requests, two traces"
    );
}

#[tokio::test]
async fn the_verify_token_never_reaches_logs_or_spans() {
    install_tracing();
    let nats = pagesync_testkit::TestNats::new().await;
    let mut config = crate::app::config(&nats);
    config.telemetry.otel_exporter_otlp_endpoint = Some("http://127.0.0.1:4318".to_owned());
    let app = TestApp::spawn_with(nats, config).await;
    for token in [crate::app::VERIFY_TOKEN, "a-wrong-token-guess"] {
        let res = app
            .http
            .get(app.url("/facebook/webhook"))
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", token),
                ("hub.challenge", "c"),
            ])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success() || res.status() == 403);
    }
    let logs = String::from_utf8(CAPTURED.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("path=/facebook/webhook"),
        "the request span was not captured"
    );
    assert!(
        !logs.contains(crate::app::VERIFY_TOKEN),
        "verify token in logs"
    );
    assert!(
        !logs.contains("a-wrong-token-guess"),
        "a guessed token in logs"
    );
    assert!(!logs.contains(crate::app::APP_SECRET), "app secret in logs");
}
