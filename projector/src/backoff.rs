//! One way to wait between attempts, for the consumer loop and the commands:
//! backon's exponential policy, every wait cut short by the shutdown token.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use tokio_util::sync::CancellationToken;

use crate::error::chain;

/// The first wait after a failure.
pub const FIRST: Duration = Duration::from_millis(250);

/// The longest wait.
pub const LONGEST: Duration = Duration::from_secs(10);

/// 250 ms doubling to at most 10 s, for as long as failures last.
pub fn policy() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST)
        .with_factor(2.0)
        .without_max_times()
}

/// The waits after consecutive failures of a loop that cannot be wrapped in one
/// retried call (the consumer's: a failed batch is handed back with its wait);
/// they start over after a success.
pub struct Delays {
    waits: ExponentialBackoff,
    failures: u32,
}

impl Default for Delays {
    fn default() -> Self {
        Self {
            waits: policy().build(),
            failures: 0,
        }
    }
}

impl Delays {
    /// Counts a failure; returns how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        self.failures += 1;
        self.waits.next().unwrap_or(LONGEST)
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn succeeded(&mut self) {
        *self = Self::default();
    }
}

/// Sleeps `delay` unless `shutdown` comes first.
pub async fn pause(delay: Duration, shutdown: &CancellationToken) {
    shutdown
        .run_until_cancelled(tokio::time::sleep(delay))
        .await;
}

/// Runs `attempt` until it succeeds, waiting by [`policy`] after each failure
/// (logged at WARN with its cause chain); `None` when `shutdown` comes first.
pub async fn until_ok<T, E, F, Fut>(
    what: &'static str,
    shutdown: &CancellationToken,
    attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error + 'static,
{
    let retried =
        attempt
            .retry(policy())
            .sleep(tokio::time::sleep)
            .notify(|e: &E, wait: Duration| {
                tracing::warn!(error = %chain(e), ?wait, "{what} failed; retrying");
            });
    match shutdown.run_until_cancelled(retried).await {
        Some(Ok(value)) => Some(value),
        // The policy has no last attempt: only shutdown ends the retries.
        Some(Err(e)) => {
            tracing::warn!(error = %chain(&e), "{what} failed; no retry left");
            None
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_250_ms_to_10_s_and_start_over_after_a_success() {
        let mut d = Delays::default();
        assert_eq!(d.failed(), Duration::from_millis(250));
        assert_eq!(d.failed(), Duration::from_millis(500));
        for _ in 0..10 {
            d.failed();
        }
        assert_eq!(d.failed(), Duration::from_secs(10));
        assert_eq!(d.failures(), 13);
        d.succeeded();
        assert_eq!(d.failures(), 0);
        assert_eq!(d.failed(), Duration::from_millis(250));
    }

    #[tokio::test]
    async fn a_retry_ends_at_once_when_shutdown_comes() {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let mut attempts = 0;
        let result: Option<()> = until_ok("test", &shutdown, || {
            attempts += 1;
            if attempts == 3 {
                stop.cancel();
            }
            async { Err(std::io::Error::other("down")) }
        })
        .await;
        assert_eq!(result, None);
        assert_eq!(attempts, 3);
    }
}
