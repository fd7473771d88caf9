use opentelemetry::trace::TracerProvider as _;
use pagesync_testkit::logs::CapturedLogs;

use crate::app::{TestApp, message_delivery};

/// Installs, once per test binary, what `OTEL_EXPORTER_OTLP_ENDPOINT` installs in
/// a real process, minus the exporter, plus the testkit's log capture at TRACE, which
/// records every span's fields. Other tests only gain a traceparent header.
fn install_tracing() -> &'static CapturedLogs {
    pagesync_testkit::logs::capture_with("trace", || {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("ingest-test"));
        Some(Box::new(layer))
    })
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
    let logs = install_tracing();
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
    let logs = logs.text();
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
