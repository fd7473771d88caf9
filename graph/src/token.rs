//! Access tokens, wrapped so that `Debug` and `Display` cannot print them.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// A page, user or app access token.
#[derive(Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// The token itself: only for building a request or encrypting it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl From<SecretString> for AccessToken {
    fn from(s: SecretString) -> Self {
        Self(s)
    }
}

impl<'de> Deserialize<'de> for AccessToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// `url` with the values of `access_token`, `appsecret_proof`, `client_secret`,
/// `fb_exchange_token` and `code` replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    const SECRET_PARAMS: [&str; 5] = [
        "access_token",
        "appsecret_proof",
        "client_secret",
        "fb_exchange_token",
        "code",
    ];
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.contains(&k) => format!("{k}=[redacted]"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let t = AccessToken::new("EAAB-very-secret");
        assert!(!format!("{t:?}").contains("very-secret"));
        assert_eq!(t.expose(), "EAAB-very-secret");
    }

    #[test]
    fn secret_query_parameters_are_redacted() {
        let url =
            "https://g/v26.0/1/conversations?fields=a&access_token=EAAB&after=X&appsecret_proof=ff";
        assert_eq!(
            redact_url(url),
            "https://g/v26.0/1/conversations?fields=a&access_token=[redacted]&after=X&appsecret_proof=[redacted]"
        );
        assert_eq!(redact_url("https://g/v26.0/1"), "https://g/v26.0/1");
    }
}
