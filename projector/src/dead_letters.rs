//! `projector dead-letters list|show|retry|discard`: the operator's view of the
//! events the projector set aside (docs/runbook.md "Dead letters"). Listing,
//! showing and discarding need only Postgres; retrying applies them like a batch
//! (see [`crate::retry`]).

use pagesync_runtime::config::DatabaseConfig;
use pagesync_runtime::connect::{self, ConnectError};
use pagesync_schema::dead_letters::{self, DeadLetter};

/// What to do with the dead letters.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterCommand {
    /// One line per dead letter, oldest first: stream sequence, event type,
    /// attempts, last failure, event id, error.
    List {
        /// Only those after this stream sequence (to page through a long list).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// One dead letter with its payload, as JSON.
    Show {
        /// Its stream sequence (the first column of `list`).
        stream_seq: i64,
    },
    /// Apply these dead letters again once their cause is fixed (all of them when
    /// none is named); those that apply leave the table.
    Retry { stream_seqs: Vec<i64> },
    /// Delete these dead letters without applying them (the event is given up).
    Discard {
        #[arg(required = true)]
        stream_seqs: Vec<i64>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cannot reach Postgres: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("reading or deleting dead letters: {}", connect::db_error_text(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("no dead letter at stream sequence {0}")]
    NotFound(i64),
}

/// Runs `list`, `show` or `discard` and returns what to print; `None` for `retry`,
/// which needs the stream and the applier (`App::retry_dead_letters_of`).
pub async fn run_in_postgres(
    database: &DatabaseConfig,
    command: &DeadLetterCommand,
) -> Result<Option<String>, DeadLetterError> {
    if matches!(command, DeadLetterCommand::Retry { .. }) {
        return Ok(None);
    }
    let pool = connect::postgres(database).await?;
    let conn = pool.get().await?;
    let out = match command {
        DeadLetterCommand::List { after, limit } => {
            let letters = dead_letters::list(&**conn, *after, *limit).await?;
            let total = dead_letters::count(&**conn).await?;
            table(&letters, total)
        }
        DeadLetterCommand::Show { stream_seq } => {
            let letter = dead_letters::get(&**conn, *stream_seq)
                .await?
                .ok_or(DeadLetterError::NotFound(*stream_seq))?;
            let mut json = serde_json::to_string_pretty(&letter)
                .expect("a dead letter serializes: strings, numbers and timestamps");
            json.push('\n');
            json
        }
        DeadLetterCommand::Discard { stream_seqs } => {
            let gone = dead_letters::discard(&**conn, stream_seqs).await?;
            tracing::info!(?gone, "dead letters discarded");
            let missing: Vec<&i64> = stream_seqs.iter().filter(|s| !gone.contains(*s)).collect();
            format!("discarded {gone:?}; not found {missing:?}\n")
        }
        DeadLetterCommand::Retry { .. } => unreachable!("returned above"),
    };
    pool.close();
    Ok(Some(out))
}

/// The listing: a header, one tab-separated line per letter, and the total.
fn table(letters: &[DeadLetter], total: i64) -> String {
    let mut out = String::from("STREAM_SEQ\tTYPE\tATTEMPTS\tLAST_FAILED_AT\tEVENT_ID\tERROR\n");
    for d in letters {
        // One line each: an error text may hold newlines.
        let error = d.error.replace(['\n', '\t'], " ");
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{error}\n",
            d.stream_seq,
            d.event_type.as_deref().unwrap_or("-"),
            d.attempts,
            d.last_failed_at.to_rfc3339(),
            d.event_id.as_deref().unwrap_or("-"),
        ));
    }
    out.push_str(&format!("{} shown, {total} in all\n", letters.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_keeps_one_line_per_letter() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let letter = DeadLetter {
            stream_seq: 7,
            subject: "fb.101.message".into(),
            event_id: None,
            event_type: Some("message".into()),
            error: "bad\nitem\tshape".into(),
            attempts: 2,
            first_failed_at: at,
            last_failed_at: at,
            payload: None,
        };
        let out = table(&[letter], 3);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(
            lines[1],
            "7\tmessage\t2\t2023-11-14T22:13:20+00:00\t-\tbad item shape"
        );
        assert_eq!(lines[2], "1 shown, 3 in all");
    }
}
