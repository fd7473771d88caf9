//! Reading and discarding the projector's dead letters (table `dead_letters`,
//! V2 migration): what `projector dead-letters` and oauth-api's
//! `/api/admin/dead-letters` share. Recording and retrying them is the projector's.

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

/// A dead letter: an event the projector could not apply, set aside.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Its JetStream stream sequence: the key.
    pub stream_seq: i64,
    pub subject: String,
    /// The envelope's id and type, when it had readable ones.
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// Why it was refused, the last time.
    pub error: String,
    /// How many times it was refused.
    pub attempts: i32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
    /// The message as the projector received it (text; `None` in a listing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

const COLUMNS: &str =
    "stream_seq, subject, event_id, event_type, error, attempts, first_failed_at, last_failed_at";

fn from_row(row: &Row, with_payload: bool) -> DeadLetter {
    DeadLetter {
        stream_seq: row.get(0),
        subject: row.get(1),
        event_id: row.get(2),
        event_type: row.get(3),
        error: row.get(4),
        attempts: row.get(5),
        first_failed_at: row.get(6),
        last_failed_at: row.get(7),
        payload: with_payload.then(|| row.get(8)),
    }
}

/// Up to `limit` dead letters after stream sequence `after`, oldest first, without payloads.
pub async fn list(
    client: &impl GenericClient,
    after: i64,
    limit: i64,
) -> Result<Vec<DeadLetter>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE stream_seq > $1 ORDER BY stream_seq LIMIT $2"
    );
    let rows = client.query(&sql, &[&after, &limit]).await?;
    Ok(rows.iter().map(|r| from_row(r, false)).collect())
}

/// How many dead letters there are.
pub async fn count(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT count(*) FROM dead_letters", &[])
        .await?;
    Ok(row.get(0))
}

/// One dead letter with its payload.
pub async fn get(
    client: &impl GenericClient,
    stream_seq: i64,
) -> Result<Option<DeadLetter>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS}, payload FROM dead_letters WHERE stream_seq = $1");
    let row = client.query_opt(&sql, &[&stream_seq]).await?;
    Ok(row.map(|r| from_row(&r, true)))
}

/// Deletes the dead letters of `stream_seqs` (the operator gave up on them);
/// returns the sequences that existed.
pub async fn discard(
    client: &impl GenericClient,
    stream_seqs: &[i64],
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "DELETE FROM dead_letters WHERE stream_seq = ANY($1) RETURNING stream_seq",
            &[&stream_seqs],
        )
        .await?;
    let mut gone: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    gone.sort_unstable();
    Ok(gone)
}
