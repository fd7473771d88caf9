//! Logs to stderr (pretty or JSON) and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
//! spans to an OTLP collector over HTTP. JSON logs carry the trace and span ids
//! of the span they are logged in, so trace context is on with them too (nothing
//! is exported without the endpoint). Pretty logs are coloured only on a terminal
//! and never under `NO_COLOR` (<https://no-color.org>).

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OtelData;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(clap::Args, Debug, Clone)]
pub struct TelemetryConfig {
    /// Log format on stderr: `pretty` (coloured on a terminal unless `NO_COLOR` is
    /// set) or `json` (one object a line, with `trace_id` and `span_id` inside a
    /// span). Filter with `RUST_LOG` (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    /// OTLP/HTTP collector; spans are exported only when set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    /// Whether spans get trace context (ids, `traceparent` on published messages):
    /// with an exporter, or for the ids in JSON logs. Off, tracing costs nothing extra.
    pub fn traces(&self) -> bool {
        self.otel_exporter_otlp_endpoint.is_some() || self.log_format == LogFormat::Json
    }
}

/// Flushes spans when dropped.
pub struct TelemetryGuard(Option<SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("tracing shutdown: {e}");
        }
    }
}

/// Installs the global tracing subscriber for a service binary.
pub fn init(service: &'static str, cfg: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match cfg.log_format {
        LogFormat::Pretty => {
            let colour = use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR"),
            );
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colour)
                .boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .event_format(WithTraceIds(format::Format::default().json()))
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = match &cfg.otel_exporter_otlp_endpoint {
        Some(_) => Some(otlp_provider(service)?),
        // Ids for the logs, no exporter: ended spans go nowhere.
        None if cfg.traces() => Some(SdkTracerProvider::builder().build()),
        None => None,
    };
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing_opentelemetry::layer().with_tracer(p.tracer(service))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(TelemetryGuard(provider))
}

/// Colour when stderr is a terminal and `NO_COLOR` is unset or empty (the
/// convention: any non-empty value turns colour off).
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The JSON event format with `trace_id` and `span_id` of the current span added
/// to the object (the OpenTelemetry layer keeps them in the span's extensions).
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let ids = ctx.lookup_current().and_then(|span| {
            let extensions = span.extensions();
            let otel = extensions.get::<OtelData>()?;
            Some((otel.trace_id()?, otel.span_id()?))
        });
        // The JSON format writes one object and a newline: the ids go before its `}`.
        match (ids, line.trim_end().strip_suffix('}')) {
            (Some((trace, span)), Some(object)) => writeln!(
                writer,
                r#"{object},"trace_id":"{trace}","span_id":"{span}"}}"#
            ),
            _ => writer.write_str(&line),
        }
    }
}

fn otlp_provider(service: &'static str) -> anyhow::Result<SdkTracerProvider> {
    // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and _HEADERS, _TIMEOUT) itself.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_never_under_no_color() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None), "a file or a pipe gets no escapes");
        assert!(!use_colour(true, Some("1".into())));
        assert!(
            use_colour(true, Some("".into())),
            "an empty NO_COLOR is unset"
        );
    }
}
