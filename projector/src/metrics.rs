//! The projector's metrics (all named `pagesync_projector_*`).

use std::time::Duration;

use crate::batch::Outcome;

pub const EVENTS_APPLIED: &str = "pagesync_projector_events_applied_total";
pub const DUPLICATES: &str = "pagesync_projector_duplicates_skipped_total";
pub const DEAD_LETTERS: &str = "pagesync_projector_dead_letters_total";
pub const BATCH_SECONDS: &str = "pagesync_projector_batch_duration_seconds";
pub const RETRIES: &str = "pagesync_projector_batch_retries_total";
pub const LAG: &str = "pagesync_projector_consumer_lag";
pub const FILES_SECONDS: &str = "pagesync_projector_files_duration_seconds";
pub const FILES_WRITTEN: &str = "pagesync_projector_file_writes_total";
pub const STALLS: &str = "pagesync_projector_stalls_total";
pub const STALLED: &str = "pagesync_projector_stalled";
pub const DEADLINES: &str = "pagesync_projector_deadline_exceeded_total";
pub const FIRST_SEEN: &str = "pagesync_projector_messages_first_seen_total";

/// Records what a committed batch did. `stream` labels the dead letters so one
/// process (or test) can tell its own apart.
pub fn record(outcome: &Outcome, stream: &str, took: Duration) {
    for (ty, n) in &outcome.applied {
        metrics::counter!(EVENTS_APPLIED, "type" => ty.as_str()).increment(*n);
    }
    metrics::counter!(DUPLICATES).increment(outcome.duplicates);
    metrics::counter!(DEAD_LETTERS, "stream" => stream.to_owned())
        .increment(outcome.new_dead_letters);
    metrics::histogram!(BATCH_SECONDS).record(took.as_secs_f64());
    for ((platform, origin), n) in &outcome.first_seen {
        metrics::counter!(FIRST_SEEN, "platform" => *platform, "origin" => *origin).increment(*n);
    }
}

pub fn retried() {
    metrics::counter!(RETRIES).increment(1);
}

pub fn lag(pending: u64) {
    metrics::gauge!(LAG).set(pending as f64);
}

/// One rewrite of the files of committed batches: how long it took (render and
/// write; the noisiest part of the projector, bound by the file system) and how
/// many files it wrote.
pub fn files(took: Duration, written: usize) {
    metrics::histogram!(FILES_SECONDS).record(took.as_secs_f64());
    metrics::counter!(FILES_WRITTEN).increment(written as u64);
}

/// A stall began (labelled like the dead letters).
pub fn stall_began(stream: &str) {
    metrics::counter!(STALLS, "stream" => stream.to_owned()).increment(1);
    metrics::gauge!(STALLED, "stream" => stream.to_owned()).set(1.0);
}

pub fn stall_ended(stream: &str) {
    metrics::gauge!(STALLED, "stream" => stream.to_owned()).set(0.0);
}

/// A batch or a file write missed its deadline (`work`: `apply` or `files`).
pub fn deadline_exceeded(work: &'static str) {
    metrics::counter!(DEADLINES, "work" => work).increment(1);
}
