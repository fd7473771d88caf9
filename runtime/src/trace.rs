//! W3C trace context across the queue: a publisher puts its span's `traceparent`
//! on every message (ingest, poller, oauth-api), and the projector starts its
//! spans as children of it, so one trace spans webhook → publish → apply → files.
//!
//! Only a process that exports spans installs the W3C propagator (see
//! [`crate::telemetry`]); everywhere else the global propagator is the no-op one,
//! so injecting yields no header and extracting yields no parent: no span is made
//! and no header travels when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset.

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The message header that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current span: `None` unless this process traces and a
/// span is active.
pub fn current_traceparent() -> Option<String> {
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove(TRACEPARENT)
}

/// A `publish` span under the current one and its `traceparent`, for the caller
/// to instrument its publish with and copy onto the messages; a disabled span and
/// `None` when this process does not trace.
pub fn publish_span() -> (Span, Option<String>) {
    if current_traceparent().is_none() {
        return (Span::none(), None);
    }
    let span = tracing::info_span!("publish");
    let traceparent = span.in_scope(current_traceparent);
    (span, traceparent)
}

/// `make()` as a child of the trace `traceparent` names; `None` when this process
/// does not trace or the value is not a valid `traceparent` (then `make` is not called).
pub fn continue_trace(traceparent: &str, make: impl FnOnce() -> Span) -> Option<Span> {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    if !parent.span().span_context().is_valid() {
        return None;
    }
    let span = make();
    // Refused only for a span the log filter disabled: it is recorded nowhere anyway.
    span.set_parent(parent).ok()?;
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_propagator_nothing_is_injected_or_extracted() {
        // No tracing subscriber and the no-op global propagator: what a process
        // without OTEL_EXPORTER_OTLP_ENDPOINT has.
        let span = tracing::info_span!("outer");
        assert_eq!(span.in_scope(current_traceparent), None);
        let (publish, traceparent) = span.in_scope(publish_span);
        assert!(publish.is_none());
        assert_eq!(traceparent, None);
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut made = false;
        assert!(
            continue_trace(tp, || {
                made = true;
                Span::none()
            })
            .is_none()
        );
        assert!(!made, "no span is made when nothing is extracted");
    }
}
