//! Programmed failures: what they answer and which requests they apply to.

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::model::Inner;
use crate::routes::fb_error;
use crate::server::Req;

/// A programmed failure.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This HTTP status with a plain-text body (429 without Facebook's JSON, say).
    Http(u16),
    /// A 5xx with Facebook's transient error JSON (code 2).
    ServerError(u16),
    /// HTTP 400 with a throttling code's error JSON and a usage header at 100%;
    /// `regain_minutes` goes into `estimated_time_to_regain_access`.
    Throttle { code: i64, regain_minutes: u32 },
    /// Code 190 with this subcode.
    TokenInvalid { subcode: Option<i64> },
    /// Any Facebook error.
    Error {
        status: u16,
        code: i64,
        subcode: Option<i64>,
        message: String,
    },
}

/// Which requests a fault applies to.
#[derive(Debug, Clone)]
pub enum Match {
    Any,
    /// Requests whose path contains this text (`"conversations"`, `"subscribed_apps"`, a page id).
    Path(String),
    /// Requests with this method whose path contains this text.
    MethodPath(Method, String),
    /// Requests whose parameter (name, then text) contains this text:
    /// `Param("platform".into(), "instagram".into())`.
    Param(String, String),
}

impl Match {
    pub fn path(s: &str) -> Self {
        Self::Path(s.into())
    }

    /// Requests whose parameter `name` contains `text`.
    pub fn param(name: &str, text: &str) -> Self {
        Self::Param(name.into(), text.into())
    }

    fn matches(&self, req: &Req) -> bool {
        let (method, path) = (&req.method, &req.path);
        match self {
            Self::Any => true,
            Self::Path(p) => path.contains(p.as_str()),
            Self::MethodPath(m, p) => m == method && path.contains(p.as_str()),
            Self::Param(name, text) => req.param(name).is_some_and(|v| v.contains(text.as_str())),
        }
    }
}

#[derive(Debug)]
pub(crate) struct FaultRule {
    pub(crate) matcher: Match,
    pub(crate) fault: Fault,
    /// `None`: forever.
    pub(crate) remaining: Option<usize>,
}

pub(crate) fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::Http(status) => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "Too Many Requests",
        )
            .into_response(),
        Fault::ServerError(status) => {
            let mut r = fb_error(
                *status,
                2,
                None,
                "An unexpected error has occurred. Please retry your request later.",
            );
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        Fault::Throttle {
            code,
            regain_minutes,
        } => {
            let message = match code {
                4 => "(#4) Application request limit reached",
                17 => "(#17) User request limit reached",
                32 => "(#32) Page request limit reached",
                613 => "(#613) Calls to this api have exceeded the rate limit.",
                80001 => {
                    "(#80001) There have been too many calls to this Page account. Wait a bit and try again."
                }
                80006 => {
                    "(#80006) There have been too many messenger api calls to this Page account. Wait a bit and try again."
                }
                _ => "Rate limit reached",
            };
            let mut r = fb_error(400, *code, None, message);
            let usage = format!(
                r#"{{"1":[{{"type":"pages","call_count":100,"total_cputime":20,"total_time":20,"estimated_time_to_regain_access":{regain_minutes}}}]}}"#
            );
            r.headers_mut().insert(
                "x-business-use-case-usage",
                HeaderValue::from_str(&usage).expect("ascii header"),
            );
            r
        }
        Fault::TokenInvalid { subcode } => fb_error(
            400,
            190,
            *subcode,
            "Error validating access token: The session has been invalidated.",
        ),
        Fault::Error {
            status,
            code,
            subcode,
            message,
        } => fb_error(*status, *code, *subcode, message),
    }
}

impl Inner {
    pub(crate) fn take_fault(&mut self, req: &Req) -> Option<Fault> {
        let rule = self
            .faults
            .iter_mut()
            .find(|r| r.remaining != Some(0) && r.matcher.matches(req))?;
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        Some(rule.fault.clone())
    }
}
