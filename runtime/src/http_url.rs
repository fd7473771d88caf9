//! URLs from the configuration (`GRAPH_API_BASE`, `FACEBOOK_REDIRECT_URI`, ...),
//! parsed once at the edge.

use std::fmt;
use std::str::FromStr;

use url::Url;

/// An absolute `http` or `https` URL with a host. Keeps the text it was given as
/// well as the parsed URL: a redirect URI must be sent exactly as registered.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl {
    url: Url,
    text: String,
}

/// Why a value is not an [`HttpUrl`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpUrlError {
    #[error("not a URL: {0}")]
    NotUrl(#[source] url::ParseError),
    #[error("must be an http or https URL")]
    NotHttp,
}

impl HttpUrl {
    pub fn parse(s: &str) -> Result<Self, HttpUrlError> {
        let url = Url::parse(s).map_err(HttpUrlError::NotUrl)?;
        // Paths are appended as segments, which only a URL with a host can take.
        let http = matches!(url.scheme(), "http" | "https");
        if !http || url.host_str().is_none() || url.cannot_be_a_base() {
            return Err(HttpUrlError::NotHttp);
        }
        Ok(Self {
            url,
            text: s.to_owned(),
        })
    }

    /// The parsed URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The text as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }
}

impl FromStr for HttpUrl {
    type Err = HttpUrlError;
    fn from_str(s: &str) -> Result<Self, HttpUrlError> {
        Self::parse(s)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The path and host only: a query or user info may hold a credential.
        write!(
            f,
            "HttpUrl({}://{}{})",
            self.url.scheme(),
            self.url.host_str().unwrap_or(""),
            self.url.path()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_with_a_host_parse() {
        for ok in [
            "https://graph.facebook.com/v26.0",
            "http://127.0.0.1:9999/v26.0",
            "https://example.test",
        ] {
            assert_eq!(HttpUrl::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "mailto:someone@example.com",
            "data:text/plain,x",
            "ftp://x/v26.0",
            "not a url",
            "/relative/path",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn https_is_told_apart() {
        assert!(HttpUrl::parse("https://a.test/x").unwrap().is_https());
        assert!(!HttpUrl::parse("http://a.test/x").unwrap().is_https());
    }
}
