//! Graph API errors, classified by HTTP status, `code` and `error_subcode`, never by message text.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Graph error codes that mean "throttled": app (4), user (17), Pages with a user
/// token (32), custom (613), Pages with a page token (80001), Messenger (80006).
pub const THROTTLE_CODES: [i64; 6] = [4, 17, 32, 613, 80001, 80006];

/// Codes Facebook documents as temporary: unknown (1) and service (2).
const TRANSIENT_CODES: [i64; 2] = [1, 2];

/// Code 1 with this subcode: "Received invalid JSON reply", after which the Send
/// API's messages may still have gone out, so it is not transient.
const MAYBE_SENT_SUBCODE: i64 = 1357046;

/// Facebook's `{"error": {...}}` body. `message` is kept for people, never used to decide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FacebookError {
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub kind: Option<String>,
    pub message: String,
    pub fbtrace_id: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: Value,
}

impl FacebookError {
    /// Reads Facebook's error body leniently (codes as numbers or strings).
    pub fn from_body(body: &[u8]) -> Option<Self> {
        let env: Envelope = serde_json::from_slice(body).ok()?;
        let e = env.error.as_object()?;
        let int = |k: &str| pagesync_schema::lenient::field::int_or_truncated(e.get(k)?);
        let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            code: int("code"),
            subcode: int("error_subcode"),
            kind: text("type"),
            message: text("message").unwrap_or_default(),
            fbtrace_id: text("fbtrace_id"),
        })
    }
}

/// What went wrong with a Graph call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// HTTP 429 or a throttling code. `retry_after` is Facebook's estimate, when given.
    #[error(
        "Graph API throttled the call (HTTP {status}{}){}",
        Given("code", .code),
        RetryAfter(.retry_after)
    )]
    Throttled {
        status: u16,
        code: Option<i64>,
        retry_after: Option<Duration>,
    },
    /// Code 190: the token expired or was revoked; a person must reconnect the page.
    /// `message` is Facebook's text with the call's token scrubbed out.
    #[error(
        "access token is invalid or expired (code 190{}): {message}",
        Given("subcode", .subcode)
    )]
    TokenInvalid {
        subcode: Option<i64>,
        message: String,
    },
    /// Codes 10 and 200-299: the token lacks a permission, or Messenger's policy refused.
    #[error(
        "permission denied by the Graph API (code {code}{}): {message}",
        Given("subcode", .subcode)
    )]
    Permission {
        code: i64,
        subcode: Option<i64>,
        message: String,
    },
    /// Any other Facebook error (a bad parameter, a user who cannot be messaged, ...).
    #[error(
        "Graph API error (HTTP {status}{}{}): {message}",
        Given("code", .code),
        Given("subcode", .subcode)
    )]
    Api {
        status: u16,
        code: Option<i64>,
        subcode: Option<i64>,
        message: String,
    },
    /// 5xx (or Facebook's transient codes 1 and 2) after every retry.
    #[error("Graph API server error (HTTP {status})")]
    Server { status: u16 },
    /// No connection to the Graph API could be made (nothing was sent), after retries.
    #[error("Graph API unreachable")]
    Network(#[source] Transport),
    /// The request was sent but no complete answer came (a timeout, a lost
    /// connection): Facebook may or may not have acted on it.
    #[error("Graph API did not answer")]
    NoAnswer(#[source] Transport),
    /// The answer was not the JSON we expect.
    #[error("unexpected Graph API response")]
    Decode(#[source] Arc<serde_json::Error>),
    /// The answer was JSON, but not what the endpoint promises.
    #[error("unexpected Graph API response: {0}")]
    Unexpected(&'static str),
    /// The client was not configured for the call.
    #[error("Graph client misconfigured: {0}")]
    Config(&'static str),
    /// A paging link pointed away from the configured Graph API base (the token is not sent there).
    #[error("paging link leaves the Graph API base; not followed")]
    ForeignLink,
}

/// A request that failed before a complete answer, as reqwest reported it with
/// the URL left out (it carries the token). Its text is the whole cause chain
/// (reqwest's own says only "error sending request"), so it ends the chain.
#[derive(Debug, Clone)]
pub struct Transport(Arc<reqwest::Error>);

impl Transport {
    /// The failure itself: timeout, connect, body.
    pub fn get(&self) -> &reqwest::Error {
        &self.0
    }
}

impl From<reqwest::Error> for Transport {
    fn from(e: reqwest::Error) -> Self {
        Self(Arc::new(e.without_url()))
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut cause: Option<&dyn std::error::Error> = Some(&*self.0);
        let mut first = true;
        while let Some(e) = cause {
            if !first {
                f.write_str(": ")?;
            }
            write!(f, "{e}")?;
            first = false;
            cause = e.source();
        }
        Ok(())
    }
}

impl std::error::Error for Transport {}

impl GraphError {
    /// Builds the error for a non-success answer. `secret` is scrubbed from Facebook's text.
    pub(crate) fn classify(
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
        secret: &str,
    ) -> Self {
        let fb = FacebookError::from_body(body);
        let code = fb.as_ref().and_then(|f| f.code);
        let subcode = fb.as_ref().and_then(|f| f.subcode);
        let message = fb
            .as_ref()
            .map(|f| scrub(&f.message, secret))
            .unwrap_or_default();
        match code {
            Some(190) => Self::TokenInvalid { subcode, message },
            Some(c) if THROTTLE_CODES.contains(&c) => Self::Throttled {
                status,
                code,
                retry_after,
            },
            _ if status == 429 => Self::Throttled {
                status,
                code,
                retry_after,
            },
            Some(c) if c == 10 || (200..300).contains(&c) => Self::Permission {
                code: c,
                subcode,
                message,
            },
            Some(1) if subcode == Some(MAYBE_SENT_SUBCODE) => Self::Api {
                status,
                code,
                subcode,
                message,
            },
            Some(c) if TRANSIENT_CODES.contains(&c) => Self::Server { status },
            _ if status >= 500 => Self::Server { status },
            _ => Self::Api {
                status,
                code,
                subcode,
                message,
            },
        }
    }
}

/// `, <label> <n>` when Facebook gave the number, else nothing: these messages
/// reach people, so never Rust's `Some(100)`.
struct Given<'a>(&'static str, &'a Option<i64>);

impl std::fmt::Display for Given<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(n) => write!(f, ", {} {n}", self.0),
            None => Ok(()),
        }
    }
}

/// `; retry after 60 s` (whole seconds, rounded up) when Facebook estimated it.
struct RetryAfter<'a>(&'a Option<Duration>);

impl std::fmt::Display for RetryAfter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(d) => write!(f, "; retry after {} s", d.as_millis().div_ceil(1000)),
            None => Ok(()),
        }
    }
}

fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: i64, sub: Option<i64>) -> Vec<u8> {
        let mut e =
            serde_json::json!({"message": "whatever text", "type": "OAuthException", "code": code});
        if let Some(s) = sub {
            e["error_subcode"] = s.into();
        }
        serde_json::json!({ "error": e }).to_string().into_bytes()
    }

    #[test]
    fn every_throttling_code_and_http_429_is_throttled() {
        for code in THROTTLE_CODES {
            let e = GraphError::classify(400, &body(code, None), None, "");
            assert!(
                matches!(e, GraphError::Throttled { code: Some(c), .. } if c == code),
                "{code}"
            );
        }
        assert!(matches!(
            GraphError::classify(429, b"Too Many Requests", None, ""),
            GraphError::Throttled {
                status: 429,
                code: None,
                ..
            }
        ));
    }

    #[test]
    fn code_190_is_token_invalid_whatever_the_subcode_or_message() {
        for sub in [None, Some(460), Some(463), Some(467), Some(492)] {
            assert!(matches!(
                GraphError::classify(400, &body(190, sub), None, ""),
                GraphError::TokenInvalid { subcode, .. } if subcode == sub
            ));
        }
    }

    #[test]
    fn permission_transient_and_other_codes_are_told_apart() {
        assert!(matches!(
            GraphError::classify(400, &body(10, Some(2018278)), None, ""),
            GraphError::Permission {
                code: 10,
                subcode: Some(2018278),
                ..
            }
        ));
        assert!(matches!(
            GraphError::classify(403, &body(200, None), None, ""),
            GraphError::Permission { code: 200, .. }
        ));
        assert!(matches!(
            GraphError::classify(500, &body(2, None), None, ""),
            GraphError::Server { status: 500 }
        ));
        assert!(matches!(
            GraphError::classify(502, b"<html>bad gateway</html>", None, ""),
            GraphError::Server { status: 502 }
        ));
        assert!(matches!(
            GraphError::classify(400, &body(100, Some(2018001)), None, ""),
            GraphError::Api {
                code: Some(100),
                subcode: Some(2018001),
                ..
            }
        ));
    }

    #[test]
    fn an_invalid_json_reply_is_not_transient_since_the_message_may_be_out() {
        assert!(matches!(
            GraphError::classify(500, &body(1, Some(1357046)), None, ""),
            GraphError::Api {
                code: Some(1),
                subcode: Some(1357046),
                ..
            }
        ));
        assert!(matches!(
            GraphError::classify(500, &body(1, Some(99)), None, ""),
            GraphError::Server { status: 500 }
        ));
    }

    #[test]
    fn codes_given_as_strings_are_read() {
        let b = br#"{"error":{"code":"190","error_subcode":"463","message":"x"}}"#;
        assert!(matches!(
            GraphError::classify(400, b, None, ""),
            GraphError::TokenInvalid { subcode: Some(463), ref message } if message == "x"
        ));
    }

    #[test]
    fn messages_name_codes_in_digits_and_leave_out_absent_ones() {
        let shown =
            |status, body: &[u8], retry| GraphError::classify(status, body, retry, "").to_string();
        assert_eq!(
            shown(400, &body(100, Some(36007)), None),
            "Graph API error (HTTP 400, code 100, subcode 36007): whatever text"
        );
        assert_eq!(
            shown(400, &body(100, None), None),
            "Graph API error (HTTP 400, code 100): whatever text"
        );
        assert_eq!(
            shown(404, b"not json", None),
            "Graph API error (HTTP 404): "
        );
        assert_eq!(
            shown(400, &body(190, Some(463)), None),
            "access token is invalid or expired (code 190, subcode 463): whatever text"
        );
        assert_eq!(
            shown(403, &body(200, None), None),
            "permission denied by the Graph API (code 200): whatever text"
        );
        assert_eq!(
            shown(400, &body(4, None), Some(Duration::from_millis(1500))),
            "Graph API throttled the call (HTTP 400, code 4); retry after 2 s"
        );
        assert_eq!(
            shown(429, b"", None),
            "Graph API throttled the call (HTTP 429)"
        );
    }

    #[test]
    fn a_token_quoted_in_facebooks_message_is_scrubbed() {
        let b = br#"{"error":{"code":100,"message":"bad token EAABsecret here"}}"#;
        let e = GraphError::classify(400, b, None, "EAABsecret");
        assert!(!e.to_string().contains("EAABsecret"));
    }
}
