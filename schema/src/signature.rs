//! Facebook's HMAC-SHA256 of the app secret, in its two uses: the webhook's
//! `X-Hub-Signature-256: sha256=<hex>` (contract §2: parsed at the edge, checked in
//! constant time; made by oauth-api's self-test and by tests) and the Graph API's
//! `appsecret_proof` (made by the Graph client, checked by the fake Graph API).

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// A well-formed signature header: 32 bytes of HMAC-SHA256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 32]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("X-Hub-Signature-256 must be sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

impl Signature {
    /// Parses a header value such as `sha256=5d41...`.
    pub fn parse(header: &[u8]) -> Result<Self, SignatureError> {
        let hex_part = header
            .strip_prefix(b"sha256=")
            .ok_or(SignatureError::Malformed)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| SignatureError::Malformed)?;
        Ok(Self(bytes))
    }

    /// Checks the signature against the raw body bytes, in constant time.
    pub fn verify(&self, secret: &AppSecret, body: &[u8]) -> Result<(), SignatureError> {
        secret
            .mac()
            .chain_update(body)
            .verify_slice(&self.0)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// The app secret, keyed once so each request only clones the prepared HMAC state.
#[derive(Clone)]
pub struct AppSecret(Hmac<Sha256>);

impl AppSecret {
    pub fn new(secret: &SecretString) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        Self(mac)
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.0.clone()
    }

    /// The header value Facebook would send for `body` (the self-test, tests, tools).
    pub fn sign(&self, body: &[u8]) -> String {
        format!("sha256={}", self.hex_tag(body))
    }

    /// `appsecret_proof` of an access token: the HMAC of the token, in hex.
    pub fn proof(&self, token: &str) -> String {
        self.hex_tag(token.as_bytes())
    }

    fn hex_tag(&self, message: &[u8]) -> String {
        hex::encode(self.mac().chain_update(message).finalize().into_bytes())
    }
}

impl std::fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> AppSecret {
        AppSecret::new(&SecretString::from("app-secret".to_owned()))
    }

    #[test]
    fn a_signature_made_with_the_secret_verifies() {
        let body = br#"{"object":"page"}"#;
        let header = secret().sign(body);
        let sig = Signature::parse(header.as_bytes()).unwrap();
        assert_eq!(sig.verify(&secret(), body), Ok(()));
        assert_eq!(
            sig.verify(&secret(), b"{\"object\":\"Page\"}"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn uppercase_hex_is_accepted_and_junk_is_malformed() {
        let body = b"x";
        let header = secret()
            .sign(body)
            .to_uppercase()
            .replace("SHA256=", "sha256=");
        assert!(
            Signature::parse(header.as_bytes())
                .unwrap()
                .verify(&secret(), body)
                .is_ok()
        );
        for bad in [
            "",
            "sha256=",
            "sha1=abcd",
            "sha256=zz",
            &format!("sha256={}", "a".repeat(63)),
        ] {
            assert_eq!(
                Signature::parse(bad.as_bytes()),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_proof_is_the_hex_hmac_of_the_token() {
        // Computed independently: printf token | openssl dgst -sha256 -hmac app-secret
        let proof = secret().proof("token");
        assert_eq!(
            proof,
            "4b062935fec529e51d39e89ee371a452c231b1e0c5549ac72d83fc4f3a0b0471"
        );
        assert_eq!(secret().sign(b"token"), format!("sha256={proof}"));
        assert_ne!(proof, secret().proof("other"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert!(!format!("{:?}", secret()).contains("app-secret"));
    }
}
