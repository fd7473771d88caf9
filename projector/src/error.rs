//! The projector's errors as they leave the library, and how a cause chain is logged.

use std::error::Error;

use crate::batch::ApplyError;
use crate::files::FileError;

/// Why the projector (or one of its commands) stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("JetStream: {what}")]
    Nats {
        what: &'static str,
        #[source]
        source: async_nats::Error,
    },
    #[error("the replay stalled for {seconds} s at sequence {seq}: {reason}")]
    ReplayStalled {
        seconds: u64,
        seq: u64,
        reason: String,
    },
    #[error("a batch was not applied")]
    Apply(#[from] ApplyError),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database")]
    Db(#[from] tokio_postgres::Error),
    #[error("files")]
    Files(#[from] FileError),
    #[error("a task of the projector failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("stopped by shutdown before it finished")]
    Cancelled,
}

impl RunError {
    /// Wraps a NATS error with what was being done (`.map_err(RunError::nats("…"))`).
    pub fn nats<E>(what: &'static str) -> impl FnOnce(E) -> Self
    where
        E: Error + Send + Sync + 'static,
    {
        move |e| Self::Nats {
            what,
            source: Box::new(e),
        }
    }
}

/// An error and its sources on one line (`a: b: c`), for a log field: the chain
/// is logged once, where the error ends up.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // Some wrappers repeat their source's text in their own.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_names_every_cause_once() {
        let io = std::io::Error::other("disk full");
        let e = FileError::Io {
            path: "/d/x.json".into(),
            source: io,
        };
        let run = RunError::Files(e);
        assert_eq!(chain(&run), "files: cannot write /d/x.json: disk full");
    }
}
