//! Bounded waiting for a condition, instead of fixed sleeps.

use std::future::Future;
use std::time::Duration;

/// Polls `check` every 20 ms until it returns true; panics naming `what` after `limit`.
pub async fn until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until_some(limit, what, || {
        let ready = check();
        async move { ready.await.then_some(()) }
    })
    .await
}

/// Polls `probe` every 20 ms until it yields a value; panics naming `what` after `limit`.
pub async fn until_some<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
