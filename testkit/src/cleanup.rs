//! Cleanup from `Drop`, which cannot await.

use std::future::Future;

/// Runs `work` to completion on a short-lived thread with its own runtime (so it
/// works whether or not the caller is inside a runtime). A failure is reported on
/// stderr, never a panic in `Drop`, so a leftover stream or database is visible.
pub(crate) fn run<F>(what: String, work: F)
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    let outcome = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(work)
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("testkit: could not clean up {what}: {e}"),
        Err(_) => eprintln!("testkit: cleanup of {what} panicked"),
    }
}
