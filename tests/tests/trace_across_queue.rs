//! One trace from the webhook to the conversation file: ingest's request and
//! publish spans, then the projector's apply and write_files spans, linked by the
//! `traceparent` header on the NATS message (docs/metrics.md "Traces").

mod common;

use common::Pipeline;
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

const DELIVERY: &str = r#"{"object":"page","entry":[{"id":"7001","time":1700000000000,"messaging":[{"sender":{"id":"71"},"recipient":{"id":"7001"},"timestamp":1700000000000,"message":{"mid":"m_traced_1","text":"hello"}}]}]}"#;

/// What `OTEL_EXPORTER_OTLP_ENDPOINT` installs in a process, exporting into memory.
fn install_tracing() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("e2e")));
    tracing::subscriber::set_global_default(subscriber).expect("the only test of this binary");
    (provider, exporter)
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "spans named {name}: {found:?}");
    found[0]
}

fn id(span: &SpanData) -> SpanId {
    span.span_context.span_id()
}

#[tokio::test]
async fn one_trace_spans_the_webhook_the_publish_the_apply_and_the_file_write() {
    // Arrange
    let (provider, exporter) = install_tracing();
    let p = Pipeline::start_with(|cfg| {
        // Only read by ingest's App::build to make its request span INFO; nothing is sent there.
        cfg.telemetry.otel_exporter_otlp_endpoint = Some("http://127.0.0.1:4318".to_owned());
    })
    .await;

    // Act
    assert_eq!(p.post_signed(DELIVERY).await, 200);
    let report = p.drain().await;
    provider.force_flush().unwrap();

    // Assert
    assert_eq!(report.messages, 1);
    assert!(p.file("facebook/7001/conversations/71.json").is_some());
    let spans = exporter.get_finished_spans().unwrap();
    let request = one(&spans, "request");
    let publish = one(&spans, "publish");
    let apply = one(&spans, "apply");
    let files = one(&spans, "write_files");
    let trace = request.span_context.trace_id();
    for span in [publish, apply, files] {
        assert_eq!(span.span_context.trace_id(), trace, "{}", span.name);
    }
    assert_eq!(publish.parent_span_id, id(request));
    assert_eq!(
        apply.parent_span_id,
        id(publish),
        "apply follows the message"
    );
    assert_eq!(files.parent_span_id, id(publish), "so does the file write");
    assert!(apply.parent_span_is_remote, "apply's parent came over NATS");
}
