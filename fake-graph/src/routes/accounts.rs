//! Login and accounts: `/oauth/access_token` (a login code or `fb_exchange_token`)
//! and `/me/accounts` with paging.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{fb_error, offset, paged};
use crate::model::Inner;
use crate::query::encode;
use crate::server::Req;

impl Inner {
    pub(crate) fn accounts(&self, req: &Req) -> Response {
        let token = req.param("access_token").unwrap_or_default();
        let Some(pages) = self.users.get(&token) else {
            return fb_error(
                400,
                190,
                None,
                "Invalid OAuth access token - Cannot parse access token",
            );
        };
        if let Err(r) = self.check_proof(req, &token) {
            return r;
        }
        let from = offset(req);
        let size = self.accounts_page_size;
        let wanted = req.param("fields").unwrap_or_default();
        let data: Vec<Value> = pages
            .iter()
            .skip(from)
            .take(size)
            .filter_map(|id| self.pages.get(id).map(|p| (id, p)))
            .map(|(id, p)| {
                let mut page = json!({
                    "id": id, "name": p.fields.get("name"), "category": p.fields.get("category"),
                    "category_list": p.fields.get("category_list"),
                    "tasks": ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"],
                    "access_token": p.token,
                });
                // Like Facebook: only when asked for, and only when the page has one.
                if let Some(ig) = p.fields.get("instagram_business_account")
                    && wanted.split(',').any(|f| f == "instagram_business_account")
                {
                    page["instagram_business_account"] = ig.clone();
                }
                page
            })
            .collect();
        let next = (from + size < pages.len()).then(|| {
            format!(
                "{}/me/accounts?limit={size}&after=c{}&access_token={}",
                self.base_url,
                from + size,
                encode(&token)
            )
        });
        paged(data, next)
    }

    pub(crate) fn oauth(&mut self, req: &Req) -> Response {
        if req.param("client_id").as_deref() != Some(self.app_id.as_str())
            || req.param("client_secret").as_deref() != Some(self.client_secret.as_str())
        {
            return fb_error(400, 1, None, "Error validating client secret.");
        }
        let grant = |token: &str, expires: i64| {
            axum::Json(
                json!({"access_token": token, "token_type": "bearer", "expires_in": expires}),
            )
            .into_response()
        };
        if let Some(code) = req.param("code") {
            if req.param("redirect_uri").is_none() {
                return fb_error(400, 100, None, "Missing redirect_uri parameter.");
            }
            return match self.codes.remove(&code) {
                Some(token) => grant(&token, 5183976),
                None => fb_error(400, 100, Some(36007), "Invalid verification code format."),
            };
        }
        if req.param("grant_type").as_deref() == Some("fb_exchange_token") {
            let short = req.param("fb_exchange_token").unwrap_or_default();
            return match self.users.get(&short).cloned() {
                Some(pages) => {
                    let long = format!("{short}-long-lived");
                    self.users.insert(long.clone(), pages);
                    grant(&long, 5183944)
                }
                None => fb_error(
                    400,
                    190,
                    None,
                    "Invalid OAuth access token - Cannot parse access token",
                ),
            };
        }
        fb_error(400, 100, None, "Missing code or grant_type")
    }
}
