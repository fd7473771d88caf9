//! `Idempotency-Key` on replies (V10, docs/inbox.md "Idempotency"): a reply sent
//! with a key reaches the Send API at most once per caller and key.
//!
//! The key is reserved first (insert-first: a row without an answer), so of two
//! requests at the same moment one sends and the other gets 409 `in_progress`.
//! Answers given once Facebook answered are stored and replayed for 24 hours;
//! answers given before (a closed window, no token) and a 502 (Facebook did not
//! take the message) release the key, so a retry is decided afresh.

use axum::http::{HeaderMap, Method, StatusCode};
use pagesync_schema::canonical::canonical_json;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;

use crate::error::ApiError;
use crate::store::Caller;

pub const HEADER: &str = "idempotency-key";

/// A key as the client sent it: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<Self, ApiError> {
        if raw.is_empty() || raw.len() > 255 || !raw.iter().all(u8::is_ascii_graphic) {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ));
        }
        let key = std::str::from_utf8(raw).expect("visible ASCII is UTF-8");
        Ok(Self(key.to_owned()))
    }

    /// The request's key, if it sent one (twice is refused: which one would count?).
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let mut values = headers.get_all(HEADER).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "send one Idempotency-Key header",
            ));
        }
        Self::parse(first.as_bytes()).map(Some)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies "the same request": SHA-256 of the method, the path and the
/// body's canonical JSON (so key order and spacing do not matter).
pub fn fingerprint(method: &Method, path: &str, body: &Value) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(method.as_str());
    h.update(b"\n");
    h.update(path);
    h.update(b"\n");
    h.update(canonical_json(body));
    h.finalize().to_vec()
}

/// Whose key it is: keys are scoped per caller.
fn scope(caller: Caller) -> String {
    match caller {
        Caller::Operator => "operator".to_owned(),
        Caller::User(u) => u.to_string(),
    }
}

/// A reservation: the row's `created_at`, so only its holder completes it.
#[derive(Debug, Clone, Copy)]
pub struct Held(chrono::DateTime<chrono::Utc>);

/// What a second look at a key finds.
#[derive(Debug)]
pub enum Reservation {
    /// This request holds the key: send, then [`complete`] or [`release`].
    Held(Held),
    /// The same request was answered before: this answer again.
    Replay(StatusCode, Value),
    /// The same request is being answered now.
    InProgress,
    /// The key was used for another request.
    Reused,
}

// Takes the key when it is free, expired (24 h) or held by a request that died
// (pending longer than any request may last).
const RESERVE: &str =
    "INSERT INTO idempotency_keys (caller, key, request_sha256) VALUES ($1, $2, $3)
    ON CONFLICT (caller, key) DO UPDATE
    SET request_sha256 = EXCLUDED.request_sha256, status = NULL, body = NULL, created_at = now()
    WHERE idempotency_keys.created_at <= now() - interval '24 hours'
       OR (idempotency_keys.status IS NULL
           AND idempotency_keys.created_at <= now() - interval '5 minutes')
    RETURNING created_at";

const LOOK: &str = "SELECT request_sha256, status, body FROM idempotency_keys
    WHERE caller = $1 AND key = $2";

pub async fn reserve(
    c: &impl GenericClient,
    caller: Caller,
    key: &IdempotencyKey,
    fingerprint: &[u8],
) -> Result<Reservation, ApiError> {
    let scope = scope(caller);
    // A row released between the insert and the look is free again: try again.
    for _ in 0..3 {
        if let Some(row) = c
            .query_opt(RESERVE, &[&scope, &key.as_str(), &fingerprint])
            .await?
        {
            return Ok(Reservation::Held(Held(row.get(0))));
        }
        let Some(row) = c.query_opt(LOOK, &[&scope, &key.as_str()]).await? else {
            continue;
        };
        if row.get::<_, &[u8]>(0) != fingerprint {
            return Ok(Reservation::Reused);
        }
        return Ok(match (row.get::<_, Option<i16>>(1), row.get(2)) {
            (Some(status), Some(body)) => Reservation::Replay(stored_status(status)?, body),
            _ => Reservation::InProgress,
        });
    }
    Ok(Reservation::InProgress)
}

fn stored_status(status: i16) -> Result<StatusCode, ApiError> {
    u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored status {status} is not HTTP")))
}

/// Stores the final answer under the held key.
pub async fn complete(
    c: &impl GenericClient,
    caller: Caller,
    key: &IdempotencyKey,
    held: Held,
    status: StatusCode,
    body: &Value,
) -> Result<(), tokio_postgres::Error> {
    let status = status.as_u16() as i16;
    c.execute(
        "UPDATE idempotency_keys SET status = $4, body = $5
         WHERE caller = $1 AND key = $2 AND created_at = $3 AND status IS NULL",
        &[&scope(caller), &key.as_str(), &held.0, &status, body],
    )
    .await?;
    Ok(())
}

/// Frees the held key: the request ended without an answer worth keeping.
pub async fn release(
    c: &impl GenericClient,
    caller: Caller,
    key: &IdempotencyKey,
    held: Held,
) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "DELETE FROM idempotency_keys
         WHERE caller = $1 AND key = $2 AND created_at = $3 AND status IS NULL",
        &[&scope(caller), &key.as_str(), &held.0],
    )
    .await?;
    Ok(())
}

/// Deletes keys older than 24 hours; the number deleted.
pub async fn prune(c: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
    c.execute(
        "DELETE FROM idempotency_keys WHERE created_at <= now() - interval '24 hours'",
        &[],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert!(IdempotencyKey::parse(b"0f8fad5b-d9cb-469f-a165-70867728950e").is_ok());
        for bad in [
            &b""[..],
            &[b'k'; 256],
            b"with space",
            b"tab\t",
            "é".as_bytes(),
        ] {
            let err = IdempotencyKey::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_idempotency_key");
        }
    }

    #[test]
    fn the_fingerprint_ignores_key_order_but_not_the_path_or_the_body() {
        let a = serde_json::json!({"text": "hi", "x": 1});
        let b: Value = serde_json::from_str(r#"{ "x": 1, "text": "hi" }"#).unwrap();
        let fp = |m: &Method, p: &str, v: &Value| fingerprint(m, p, v);
        assert_eq!(fp(&Method::POST, "/p", &a), fp(&Method::POST, "/p", &b));
        assert_ne!(fp(&Method::POST, "/p", &a), fp(&Method::POST, "/q", &a));
        let other = serde_json::json!({"text": "hi!"});
        assert_ne!(fp(&Method::POST, "/p", &a), fp(&Method::POST, "/p", &other));
    }
}
