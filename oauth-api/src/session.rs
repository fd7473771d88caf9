//! Sessions: a `session_id` cookie of 256 random bits, stored only as its SHA-256,
//! and the caller of an API request (operator bearer token or session user).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::store::{self, Caller};

pub const COOKIE_NAME: &str = "session_id";

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
pub fn cookie(value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .expect("base64url and ASCII attributes form a valid header")
}

/// The `session_id` cookie of a request, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The user of the request's session, if it has a live one.
pub async fn current_user(state: &AppState, headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    let Some(value) = cookie_value(headers) else {
        return Ok(None);
    };
    let conn = state.pool.get().await?;
    Ok(store::session_user(&**conn, &hash_id(value)).await?)
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
            let Some(expected) = &state.operator_token else {
                return Err(ApiError::Unauthorized("operator access is not enabled"));
            };
            let presented = presented.trim();
            let ok: bool = !presented.is_empty()
                && bool::from(
                    presented
                        .as_bytes()
                        .ct_eq(expected.expose_secret().as_bytes()),
                );
            return if ok {
                Ok(Caller::Operator)
            } else {
                Err(ApiError::Unauthorized("operator token is not valid"))
            };
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
        let c = cookie("abc", 60, true);
        let c = c.to_str().unwrap();
        assert!(c.starts_with("session_id=abc;"));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(
            !cookie("abc", 60, false)
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
    }
}
