//! The Graph API areas the fake serves, one module each, and what they share:
//! Facebook's error JSON, paging, and the page-token check.

mod accounts;
pub(crate) mod pages;
mod profiles;
mod send;
mod subscriptions;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::model::Inner;
use crate::server::Req;

/// Facebook's error JSON: `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`.
pub(crate) fn fb_error(status: u16, code: i64, subcode: Option<i64>, message: &str) -> Response {
    let mut e = json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AFakeTrace1"});
    if let Some(sc) = subcode {
        e["error_subcode"] = sc.into();
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({ "error": e })),
    )
        .into_response()
}

pub(crate) fn graph_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+0000").to_string()
}

fn paged(data: Vec<Value>, next: Option<String>) -> Response {
    let mut body = json!({ "data": data });
    if let Some(n) = next {
        body["paging"] = json!({"cursors": {"after": "x", "before": "y"}, "next": n});
    }
    axum::Json(body).into_response()
}

/// The offset an `after=c<N>` cursor names.
pub(crate) fn offset(req: &Req) -> usize {
    req.param("after")
        .and_then(|a| a.strip_prefix('c').and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

impl Inner {
    /// Dispatches to the area that serves the path.
    pub(crate) fn route(&mut self, req: &Req) -> Response {
        let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        match (req.method.clone(), segs.as_slice()) {
            (Method::GET, ["oauth", "access_token"]) => self.oauth(req),
            (Method::GET, ["me", "accounts"]) => self.accounts(req),
            (Method::GET, [psid]) if self.customer_page(psid).is_some() => self.profile(req, psid),
            (Method::GET, [page]) => self.page_node(req, page),
            (Method::GET, [page, "conversations"]) => self.conversations(req, page),
            (Method::GET, [conv, "messages"]) if conv.starts_with("t_") => self.nested(req, conv),
            (Method::GET, [page, "subscribed_apps"]) => self.subscribed_apps(req, page),
            (Method::POST, [page, "subscribed_apps"]) => self.subscribe(req, page),
            (Method::POST, [page, "messages"]) => self.send(req, page),
            _ => fb_error(
                400,
                100,
                Some(33),
                "Unsupported request - method type or path not supported by the fake",
            ),
        }
    }
}

impl Inner {
    /// Checks the page token (and `appsecret_proof` when sent).
    #[allow(clippy::result_large_err)] // the error is the ready answer
    pub(crate) fn auth_page(&self, req: &Req, page: &str) -> Result<(), Response> {
        let Some(p) = self.pages.get(page) else {
            return Err(fb_error(
                400,
                100,
                Some(33),
                "Object does not exist, cannot be loaded due to missing permissions, or does not support this operation",
            ));
        };
        let token = req.param("access_token").unwrap_or_default();
        if token.is_empty() {
            return Err(fb_error(
                400,
                104,
                None,
                "An access token is required to request this resource.",
            ));
        }
        if p.revoked {
            return Err(fb_error(
                400,
                190,
                Some(460),
                "Error validating access token: The session has been invalidated because the user changed their password.",
            ));
        }
        if token != p.token {
            // Facebook echoes a malformed token in its message: callers must scrub it.
            return Err(fb_error(
                400,
                190,
                None,
                &format!("Malformed access token {token}"),
            ));
        }
        self.check_proof(req, &token)
    }

    #[allow(clippy::result_large_err)]
    pub(crate) fn check_proof(&self, req: &Req, token: &str) -> Result<(), Response> {
        if let Some(proof) = req.param("appsecret_proof")
            && self.app_secret.proof(token) != proof
        {
            return Err(fb_error(
                400,
                100,
                None,
                "Invalid appsecret_proof provided in the API argument",
            ));
        }
        Ok(())
    }
}
