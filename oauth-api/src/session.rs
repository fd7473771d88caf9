//! Sessions (docs/oauth-api.md, "Sessions"): a `session_id` cookie of 256 random
//! bits, stored only as its SHA-256; pending until a login completes, then replaced
//! by a fresh one; expired ones pruned. And the caller of an API request (operator
//! bearer token or session user).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use cookie::{Cookie, SameSite};
use deadpool_postgres::Pool;
use pagesync_runtime::CancellationToken;
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::state_token::StateError;
use crate::store::{self, Caller, SessionKind};

pub const COOKIE_NAME: &str = "session_id";
/// The console's operator login (docs/console.md): the operator token itself, in an
/// HttpOnly, SameSite=Strict cookie, so it never sits in a URL or in script-readable storage.
pub const OPERATOR_COOKIE: &str = "pagesync_operator";
/// Longer values are no session id of ours (43 characters): not even hashed.
const MAX_COOKIE_LEN: usize = 128;
/// Longer values are not compared with the operator token at all.
pub const MAX_OPERATOR_COOKIE_LEN: usize = 1024;

/// A new session id: the cookie value and the hash that is stored.
pub fn new_session_id() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let value = URL_SAFE_NO_PAD.encode(raw);
    let hash = hash_id(&value);
    (value, hash)
}

pub fn hash_id(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The `Set-Cookie` value for a session.
pub fn cookie(value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    let c = Cookie::build((COOKIE_NAME, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    HeaderValue::from_str(&c.to_string())
        .expect("base64url and ASCII attributes form a valid header")
}

/// The `session_id` cookie of a request, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    named_cookie(headers, COOKIE_NAME, MAX_COOKIE_LEN)
}

/// The non-empty value of the cookie `name`, if the request has one at most `max_len` long.
pub fn named_cookie<'h>(headers: &'h HeaderMap, name: &str, max_len: usize) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        // A malformed pair elsewhere in the header does not hide ours.
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
        .filter(|v| !v.is_empty() && v.len() <= max_len)
}

/// A browser's live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: Uuid,
    pub kind: SessionKind,
    id_sha256: [u8; 32],
}

/// The request's live session of either kind, if it has one.
pub async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, ApiError> {
    let Some(value) = cookie_value(headers) else {
        return Ok(None);
    };
    let id_sha256 = hash_id(value);
    let conn = state.pool.get().await?;
    Ok(store::find_session(&**conn, &id_sha256)
        .await?
        .map(|(user, kind)| Session {
            user,
            kind,
            id_sha256,
        }))
}

/// The user of the request's authenticated session, if it has a live one: a
/// pending session grants nothing.
pub async fn current_user(state: &AppState, headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    Ok(current_session(state, headers)
        .await?
        .filter(|s| s.kind == SessionKind::Authenticated)
        .map(|s| s.user))
}

/// A pending session under a new user uuid (no `users` row): it lets its browser
/// finish a login, nothing else. Returns the uuid and the `Set-Cookie`.
pub async fn start_pending(state: &AppState) -> Result<(Uuid, HeaderValue), ApiError> {
    let (value, hash) = new_session_id();
    let user = Uuid::new_v4();
    let conn = state.pool.get().await?;
    let expires = expiry(state.pending_session_ttl)?;
    store::create_session(&**conn, SessionKind::Pending, &hash, user, expires).await?;
    tracing::info!(user_uuid = %user, "new pending session");
    let cookie = cookie(&value, state.pending_session_ttl, state.secure_cookies);
    Ok((user, cookie))
}

/// Logs `user` in under a session id never seen before, ending `replaced` (the
/// browser's session when the login started) in the same transaction, so a
/// session id planted before the login is worthless after it. Every login goes
/// through here: the OAuth callback, and the console's operator login when it
/// comes. Refused when `replaced` ended meanwhile (a concurrent login won).
pub async fn establish(
    state: &AppState,
    user: Uuid,
    replaced: Option<&Session>,
) -> Result<HeaderValue, ApiError> {
    let (value, hash) = new_session_id();
    let expires = expiry(state.session_ttl)?;
    let mut conn = state.pool.get().await?;
    let tx = conn.transaction().await?;
    if let Some(old) = replaced
        && store::end_session(&*tx, &old.id_sha256).await? != Some(old.user)
    {
        return Err(StateError::NoSession.into());
    }
    store::create_session(&*tx, SessionKind::Authenticated, &hash, user, expires).await?;
    tx.commit().await?;
    tracing::info!(user_uuid = %user, "session established");
    Ok(cookie(&value, state.session_ttl, state.secure_cookies))
}

fn expiry(ttl: Duration) -> Result<chrono::DateTime<Utc>, ApiError> {
    let ttl = chrono::Duration::from_std(ttl).map_err(|e| anyhow::anyhow!("session TTL: {e}"))?;
    Ok(Utc::now() + ttl)
}

/// Deletes expired sessions of both kinds every `every` until stopped.
pub struct Pruner {
    pub pool: Pool,
    pub every: Duration,
}

impl Pruner {
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            // A failed round is retried at the next tick; expired rows are refused meanwhile.
            if let Err(e) = self.prune().await {
                tracing::warn!(error = format!("{e:#}"), "could not prune expired sessions");
            }
        }
    }

    async fn prune(&self) -> Result<(), ApiError> {
        let conn = self.pool.get().await?;
        let (sessions, pending) = store::prune_sessions(&**conn).await?;
        crate::metrics::sessions_pruned(sessions, pending);
        if sessions + pending > 0 {
            tracing::debug!(sessions, pending, "expired sessions pruned");
        }
        // Idempotency keys expire after 24 hours (docs/inbox.md "Idempotency").
        let keys = crate::inbox::idempotency::prune(&**conn).await?;
        if keys > 0 {
            tracing::debug!(keys, "expired idempotency keys pruned");
        }
        Ok(())
    }
}

/// The `Set-Cookie` of the console's operator login: the token base64url-encoded
/// (a token may hold characters a cookie cannot), HttpOnly, SameSite=Strict.
/// `None` clears it.
pub fn operator_cookie(token: Option<&str>, secure: bool) -> HeaderValue {
    let value = token.map(|t| URL_SAFE_NO_PAD.encode(t)).unwrap_or_default();
    let mut c = Cookie::build((OPERATOR_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure);
    if token.is_none() {
        c = c.max_age(cookie::time::Duration::ZERO);
    }
    HeaderValue::from_str(&c.build().to_string())
        .expect("base64url and ASCII attributes form a valid header")
}

/// The `Set-Cookie` that ends the browser's `session_id`.
pub fn cleared_session_cookie(secure: bool) -> HeaderValue {
    cookie("", Duration::ZERO, secure)
}

/// Ends the request's session, if it has one (logout).
pub async fn end_current(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(session) = current_session(state, headers).await? {
        let conn = state.pool.get().await?;
        store::end_session(&**conn, &session.id_sha256).await?;
    }
    Ok(())
}

/// `Caller::Operator` when `presented` is the operator token (compared in constant time).
fn operator(state: &AppState, presented: &str, refusal: &'static str) -> Result<Caller, ApiError> {
    let Some(expected) = &state.operator_token else {
        return Err(ApiError::Unauthorized("operator access is not enabled"));
    };
    if operator_token_matches(expected, presented) {
        Ok(Caller::Operator)
    } else {
        Err(ApiError::Unauthorized(refusal))
    }
}

/// Whether `presented` (surrounding blanks ignored) is the operator token.
pub fn operator_token_matches(expected: &secrecy::SecretString, presented: &str) -> bool {
    let presented = presented.trim();
    !presented.is_empty()
        && bool::from(
            presented
                .as_bytes()
                .ct_eq(expected.expose_secret().as_bytes()),
        )
}

/// An authenticated caller: extracting it answers 401 when there is no credential.
impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(auth) = parts.headers.get(AUTHORIZATION) {
            let presented = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or(ApiError::Unauthorized(
                    "Authorization must be Bearer <OPERATOR_TOKEN>",
                ))?;
            return operator(state, presented, "operator token is not valid");
        }
        // The console's operator login keeps the token in a cookie of its own.
        if let Some(value) = named_cookie(&parts.headers, OPERATOR_COOKIE, MAX_OPERATOR_COOKIE_LEN)
        {
            let stale = "the operator token of this browser is no longer valid: log in again";
            let presented = URL_SAFE_NO_PAD
                .decode(value)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(ApiError::Unauthorized(stale))?;
            return operator(state, &presented, stale);
        }
        match current_user(state, &parts.headers).await? {
            Some(user) => Ok(Caller::User(user)),
            None => Err(ApiError::Unauthorized(
                "log in at /facebook/login or send Authorization: Bearer <operator token>",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_carry_256_bits_and_are_stored_hashed() {
        let (value, hash) = new_session_id();
        assert_eq!(URL_SAFE_NO_PAD.decode(&value).unwrap().len(), 32);
        assert_eq!(hash, hash_id(&value));
        assert_ne!(new_session_id().0, value);
    }

    #[test]
    fn the_cookie_is_http_only_lax_and_secure_only_over_https() {
        let c = cookie("abc", Duration::from_secs(60), true);
        let c = c.to_str().unwrap();
        assert!(c.starts_with("session_id=abc;"));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(c.contains("Path=/") && c.contains("Max-Age=60"), "{c}");
        assert!(
            !cookie("abc", Duration::from_secs(60), false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; session_id=xyz; b=2"));
        assert_eq!(cookie_value(&h), Some("xyz"));
        h.insert(COOKIE, HeaderValue::from_static("session_idx=1"));
        assert_eq!(cookie_value(&h), None);
        h.insert(COOKIE, HeaderValue::from_static("junk; =x; session_id=abc"));
        assert_eq!(cookie_value(&h), Some("abc"));
        h.insert(COOKIE, HeaderValue::from_static("session_id="));
        assert_eq!(cookie_value(&h), None);
    }
}
