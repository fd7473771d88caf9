//! Log capture for tests: one global `tracing` subscriber per test binary that writes
//! every line (events, and each span's fields when it opens) into a shared buffer, so
//! a test can assert what was logged, and above all what never was (tokens, secrets).
//!
//! The subscriber is global because the services under test log from tasks on other
//! threads; it is installed on the first call and every later call returns the same
//! capture, so every test of a binary writes into one buffer. Assertions that nothing
//! was logged therefore cover the whole binary.

use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// A layer a caller adds to the global subscriber beside the capture (e.g. OpenTelemetry).
pub type ExtraLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// What the global subscriber of this test binary has written so far.
#[derive(Clone, Default)]
pub struct CapturedLogs {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl CapturedLogs {
    /// Everything captured, as raw bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.buf.lock().unwrap().clone()
    }

    /// Everything captured, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// Whether `needle` was logged anywhere.
    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test binary, a global subscriber that captures every line
/// `filter` (an `EnvFilter` directive such as `"trace"`) lets through, and returns
/// the capture. Later calls return the same capture and ignore their `filter`.
pub fn capture(filter: &str) -> &'static CapturedLogs {
    capture_with(filter, || None)
}

/// As [`capture`], with one more layer in the same global subscriber; `extra` runs
/// only on the call that installs it, so it may also do other once-only setup.
pub fn capture_with(
    filter: &str,
    extra: impl FnOnce() -> Option<ExtraLayer>,
) -> &'static CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(logs.clone())
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
            .with_ansi(false);
        // The filter is the outermost layer so that it filters the extra one too.
        tracing_subscriber::registry()
            .with(extra())
            .with(lines)
            .with(EnvFilter::new(filter))
            .try_init()
            .expect("the log capture is the first global subscriber of this test binary");
        logs
    })
}
