//! The OAuth `state` parameter (contract §6):
//! `<unix_ts>:<nonce>:<user_uuid>:<base64url HMAC-SHA256(secret, "<ts>:<nonce>:<uuid>")>`.
//!
//! The signature is written in base64url without padding; padded input is accepted
//! too. The nonce is 128 random bits in base64url without padding (no `:` possible).

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

/// A state is accepted for this long after it was issued.
pub const MAX_AGE_SECS: i64 = 10 * 60;
/// Clock skew tolerated for a state that claims to come from the future.
const FUTURE_SKEW_SECS: i64 = 60;

/// Why a state was refused. The text is safe to show (it never echoes the state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state is not <ts>:<nonce>:<uuid>:<signature>")]
    Malformed,
    #[error("state signature does not match")]
    BadSignature,
    #[error("state is older than 10 minutes; log in again")]
    Expired,
    #[error("state was already used")]
    Replayed,
    #[error("state belongs to another session; log in again")]
    OtherSession,
    #[error("no session; start at /facebook/login")]
    NoSession,
}

impl StateError {
    /// The `reason` label of `pagesync_oauth_api_state_rejections_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::Replayed => "replayed",
            Self::OtherSession => "other_session",
            Self::NoSession => "no_session",
        }
    }
}

/// A state whose signature and age were checked; nonce and session checks remain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedState {
    pub issued_at: i64,
    pub nonce: String,
    pub user: Uuid,
}

/// Signs and verifies states with `STATE_TOKEN_SECRET`.
#[derive(Clone)]
pub struct StateSigner {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for StateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateSigner([redacted])")
    }
}

impl StateSigner {
    pub fn new(secret: &SecretString) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        Self { mac }
    }

    /// A fresh state for `user` issued at `now` (unix seconds).
    pub fn issue(&self, user: Uuid, now: i64) -> String {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        self.sign(now, &URL_SAFE_NO_PAD.encode(nonce), user)
    }

    /// The state for these parts (tests use it to forge old or foreign states).
    pub fn sign(&self, ts: i64, nonce: &str, user: Uuid) -> String {
        let payload = format!("{ts}:{nonce}:{user}");
        let tag = self
            .mac
            .clone()
            .chain_update(payload.as_bytes())
            .finalize()
            .into_bytes();
        format!("{payload}:{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks shape, signature (constant time) and age at `now` (unix seconds).
    pub fn verify(&self, state: &str, now: i64) -> Result<VerifiedState, StateError> {
        let (payload, sig) = state.rsplit_once(':').ok_or(StateError::Malformed)?;
        let mut parts = payload.splitn(3, ':');
        let (Some(ts), Some(nonce), Some(user)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(StateError::Malformed);
        };
        let tag = URL_SAFE_NO_PAD
            .decode(sig)
            .or_else(|_| URL_SAFE.decode(sig))
            .map_err(|_| StateError::BadSignature)?;
        self.mac
            .clone()
            .chain_update(payload.as_bytes())
            .verify_slice(&tag)
            .map_err(|_| StateError::BadSignature)?;
        // Only signed content is parsed further.
        let issued_at: i64 = ts.parse().map_err(|_| StateError::Malformed)?;
        let user = Uuid::parse_str(user).map_err(|_| StateError::Malformed)?;
        if nonce.is_empty() || nonce.len() > 64 {
            return Err(StateError::Malformed);
        }
        if now - issued_at > MAX_AGE_SECS || issued_at - now > FUTURE_SKEW_SECS {
            return Err(StateError::Expired);
        }
        Ok(VerifiedState {
            issued_at,
            nonce: nonce.to_owned(),
            user,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> StateSigner {
        StateSigner::new(&SecretString::from("state-secret".to_owned()))
    }

    const NOW: i64 = 1_795_000_000;

    #[test]
    fn an_issued_state_has_four_parts_and_verifies() {
        let user = Uuid::new_v4();
        let state = signer().issue(user, NOW);
        let parts: Vec<&str> = state.split(':').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], NOW.to_string());
        assert_eq!(parts[2], user.to_string());
        assert!(!parts[3].contains('='), "signature is unpadded base64url");
        let v = signer().verify(&state, NOW + 5).unwrap();
        assert_eq!((v.issued_at, v.user), (NOW, user));
        assert_eq!(v.nonce, parts[1]);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_first_three_parts() {
        let user = Uuid::nil();
        let state = signer().sign(NOW, "abc", user);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"state-secret").unwrap();
        mac.update(format!("{NOW}:abc:{user}").as_bytes());
        let expected = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(state, format!("{NOW}:abc:{user}:{expected}"));
    }

    #[test]
    fn a_padded_signature_is_accepted() {
        let state = signer().sign(NOW, "n", Uuid::new_v4());
        assert!(signer().verify(&format!("{state}="), NOW).is_ok());
    }

    #[test]
    fn tampered_foreign_and_old_states_are_refused() {
        let user = Uuid::new_v4();
        let state = signer().sign(NOW, "n1", user);
        let other = Uuid::new_v4();
        let swapped = state.replace(&user.to_string(), &other.to_string());
        assert_eq!(
            signer().verify(&swapped, NOW),
            Err(StateError::BadSignature)
        );
        let foreign =
            StateSigner::new(&SecretString::from("other".to_owned())).sign(NOW, "n", user);
        assert_eq!(
            signer().verify(&foreign, NOW),
            Err(StateError::BadSignature)
        );
        assert_eq!(
            signer().verify(&state, NOW + MAX_AGE_SECS + 1),
            Err(StateError::Expired)
        );
        assert!(signer().verify(&state, NOW + MAX_AGE_SECS).is_ok());
        assert_eq!(
            signer().verify(&state, NOW - 3600),
            Err(StateError::Expired)
        );
        for junk in ["", "a:b", "1:2:3", "x:y:z:w:v"] {
            assert!(signer().verify(junk, NOW).is_err(), "{junk}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert!(!format!("{:?}", signer()).contains("state-secret"));
    }
}
