//! Encryption of stored access tokens: AES-256-GCM with a random 96-bit nonce per
//! encryption and the key's id stored beside the ciphertext, so keys can rotate.
//!
//! The current key (`TOKEN_ENCRYPTION_KEY`) encrypts; older keys, when configured,
//! still decrypt what they sealed. A key's id is derived from the key itself
//! (first 8 bytes of its SHA-256, hex), so no extra setting can drift from it.

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

/// Why a key or a ciphertext was refused. Never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("must be base64 of exactly 32 random bytes")]
    BadKey,
    #[error("no configured key has id {0}")]
    UnknownKey(String),
    #[error("ciphertext is damaged or was sealed with a different key or context")]
    Undecryptable,
    #[error("decrypted token is not UTF-8")]
    NotUtf8,
}

/// One AES-256 key and its id. `Debug` shows only the id.
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    cipher: Aes256Gcm,
}

impl EncryptionKey {
    /// Parses base64 (standard alphabet, padded or not) of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, CryptoError> {
        let s = s.trim();
        let bytes = STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
            .map_err(|_| CryptoError::BadKey)?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let digest = Sha256::digest(bytes);
        Ok(Self {
            id: hex::encode(&digest[..8]),
            cipher: Aes256Gcm::new_from_slice(bytes).map_err(|_| CryptoError::BadKey)?,
        })
    }

    /// A fresh random key (tests and key generation).
    pub fn generate() -> (Self, String) {
        let key = Aes256Gcm::generate_key(OsRng);
        let b64 = STANDARD.encode(key);
        (Self::from_bytes(&key).expect("32 bytes"), b64)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey(id={})", self.id)
    }
}

impl FromStr for EncryptionKey {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, CryptoError> {
        Self::from_base64(s)
    }
}

/// A clap value parser for `TOKEN_ENCRYPTION_KEY`; its error never echoes the value.
pub fn parse_key(s: &str) -> Result<EncryptionKey, CryptoError> {
    EncryptionKey::from_base64(s)
}

/// A clap value parser for a comma-separated list of old keys (may be empty).
pub fn parse_old_keys(s: &str) -> Result<OldKeys, CryptoError> {
    s.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(EncryptionKey::from_base64)
        .collect::<Result<Vec<_>, _>>()
        .map(OldKeys)
}

/// Keys that still decrypt but no longer encrypt.
#[derive(Clone, Debug, Default)]
pub struct OldKeys(pub Vec<EncryptionKey>);

/// What is stored: the key id and `nonce || ciphertext+tag`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sealed(key_id={}, {} bytes)",
            self.key_id,
            self.bytes.len()
        )
    }
}

/// Encrypts with the current key, decrypts with any configured key.
#[derive(Clone, Debug)]
pub struct TokenCipher {
    current: EncryptionKey,
    old: Vec<EncryptionKey>,
}

impl TokenCipher {
    pub fn new(current: EncryptionKey, old: OldKeys) -> Self {
        Self {
            current,
            old: old.0,
        }
    }

    pub fn current_key_id(&self) -> &str {
        self.current.id()
    }

    /// Seals `plaintext`. `context` (a page id, say) is authenticated but not stored:
    /// a ciphertext copied to another row does not decrypt there.
    pub fn encrypt(&self, plaintext: &str, context: &str) -> Sealed {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer does not fail");
        let mut bytes = Vec::with_capacity(NONCE_LEN + ct.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ct);
        Sealed {
            key_id: self.current.id.clone(),
            bytes,
        }
    }

    /// Opens a sealed token with the key named by `key_id`.
    pub fn decrypt(
        &self,
        key_id: &str,
        bytes: &[u8],
        context: &str,
    ) -> Result<SecretString, CryptoError> {
        let key = std::iter::once(&self.current)
            .chain(&self.old)
            .find(|k| k.id == key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        if bytes.len() < NONCE_LEN {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ct) = bytes.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| CryptoError::NotUtf8)
    }

    /// True when `key_id` is not the current key: the token should be re-encrypted.
    pub fn needs_rotation(&self, key_id: &str) -> bool {
        key_id != self.current.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn cipher() -> TokenCipher {
        TokenCipher::new(EncryptionKey::generate().0, OldKeys::default())
    }

    #[test]
    fn a_token_round_trips_and_the_ciphertext_does_not_contain_it() {
        let c = cipher();
        let sealed = c.encrypt("EAAB-secret-token", "101");
        assert_eq!(sealed.key_id, c.current_key_id());
        assert!(!sealed.bytes.windows(6).any(|w| w == b"secret"));
        let back = c.decrypt(&sealed.key_id, &sealed.bytes, "101").unwrap();
        assert_eq!(back.expose_secret(), "EAAB-secret-token");
    }

    #[test]
    fn every_encryption_uses_a_fresh_nonce() {
        let c = cipher();
        let a = c.encrypt("same", "p");
        let b = c.encrypt("same", "p");
        assert_ne!(a.bytes[..NONCE_LEN], b.bytes[..NONCE_LEN]);
        assert_ne!(a.bytes, b.bytes);
    }

    #[test]
    fn a_ciphertext_does_not_open_under_another_context_or_when_tampered() {
        let c = cipher();
        let sealed = c.encrypt("token", "101");
        assert_eq!(
            c.decrypt(&sealed.key_id, &sealed.bytes, "102").unwrap_err(),
            CryptoError::Undecryptable
        );
        let mut bad = sealed.bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(c.decrypt(&sealed.key_id, &bad, "101").is_err());
        assert!(c.decrypt(&sealed.key_id, &bad[..5], "101").is_err());
    }

    #[test]
    fn old_keys_decrypt_after_rotation_and_new_tokens_use_the_current_key() {
        let (old, old_b64) = EncryptionKey::generate();
        let before = TokenCipher::new(old, OldKeys::default());
        let sealed = before.encrypt("token", "p");

        let (new, _) = EncryptionKey::generate();
        let after = TokenCipher::new(new, parse_old_keys(&format!(" {old_b64} ,")).unwrap());
        assert!(after.needs_rotation(&sealed.key_id));
        let opened = after.decrypt(&sealed.key_id, &sealed.bytes, "p").unwrap();
        assert_eq!(opened.expose_secret(), "token");
        let resealed = after.encrypt(opened.expose_secret(), "p");
        assert!(!after.needs_rotation(&resealed.key_id));
    }

    #[test]
    fn a_ciphertext_from_an_unknown_key_names_only_the_key_id() {
        let sealed = cipher().encrypt("token", "p");
        let err = cipher()
            .decrypt(&sealed.key_id, &sealed.bytes, "p")
            .unwrap_err();
        assert_eq!(err, CryptoError::UnknownKey(sealed.key_id.clone()));
    }

    #[test]
    fn malformed_keys_are_refused_without_echoing_them() {
        for bad in ["", "not base64!!", "c2hvcnQ=", &"A".repeat(60)] {
            let err = parse_key(bad).unwrap_err();
            assert_eq!(err, CryptoError::BadKey);
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad));
            }
        }
        let (_, good) = EncryptionKey::generate();
        let key = parse_key(&good).unwrap();
        assert!(!format!("{key:?}").contains(&good));
        assert_eq!(key.id().len(), 16);
    }
}
