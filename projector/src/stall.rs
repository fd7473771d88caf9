//! Whether the projector makes progress. A batch that is not applied, or whose
//! files are not written, begins a stall; the stall lasts until batches are
//! applied and acknowledged again. While it lasts `/ready` answers 503 with the
//! last failure, which the pool's own check (a fresh connection answering
//! `SELECT 1`) cannot see. It is logged at WARN when it begins and every
//! [`REMIND_EVERY`] while it lasts, not at every retry.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics;

/// How often a stall that lasts is logged again.
pub const REMIND_EVERY: Duration = Duration::from_secs(30);

struct Episode {
    since: Instant,
    last_logged: Instant,
    failures: u64,
    reason: String,
}

/// The projector's stall state, shared by the consumer loop and `/ready`.
pub struct Stall {
    stream: String,
    episode: Mutex<Option<Episode>>,
}

impl Stall {
    /// `stream` labels the metrics, as for the dead letters.
    pub fn new(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            episode: Mutex::new(None),
        }
    }

    /// Records a failure to apply a batch or write its files.
    pub fn failed(&self, reason: &str) {
        let now = Instant::now();
        let mut episode = self.episode.lock().expect("stall state");
        match episode.as_mut() {
            None => {
                tracing::warn!(
                    error = reason,
                    "projector stalled: batches are handed back until one applies"
                );
                metrics::stall_began(&self.stream);
                *episode = Some(Episode {
                    since: now,
                    last_logged: now,
                    failures: 1,
                    reason: reason.to_owned(),
                });
            }
            Some(e) => {
                e.failures += 1;
                reason.clone_into(&mut e.reason);
                if now.duration_since(e.last_logged) >= REMIND_EVERY {
                    e.last_logged = now;
                    tracing::warn!(
                        stalled_for = ?now.duration_since(e.since),
                        failures = e.failures,
                        error = reason,
                        "projector still stalled"
                    );
                }
            }
        }
    }

    /// Records batches applied and acknowledged: a stall, if any, is over.
    pub fn progressed(&self) {
        let ended = self.episode.lock().expect("stall state").take();
        if let Some(e) = ended {
            tracing::warn!(
                stalled_for = ?e.since.elapsed(),
                failures = e.failures,
                "projector applies batches again"
            );
            metrics::stall_ended(&self.stream);
        }
    }

    /// `Err(reason)` while stalled, for `/ready`.
    pub fn check(&self) -> Result<(), String> {
        match self.episode.lock().expect("stall state").as_ref() {
            None => Ok(()),
            Some(e) => Err(format!(
                "no batch applied for {:.1} s: {}",
                e.since.elapsed().as_secs_f64(),
                e.reason
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_stalls_until_progress() {
        let stall = Stall::new("S");
        assert_eq!(stall.check(), Ok(()));
        stall.failed("first");
        stall.failed("second");
        let reason = stall.check().unwrap_err();
        assert!(reason.starts_with("no batch applied for "), "{reason}");
        assert!(reason.ends_with(": second"), "{reason}");
        stall.progressed();
        assert_eq!(stall.check(), Ok(()));
    }
}
