//! W3C trace context for the messages a request publishes.

use std::collections::HashMap;

use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` of the current span, when tracing export is on and a span is active.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}
