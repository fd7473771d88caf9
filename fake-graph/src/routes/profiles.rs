//! The User Profile API: `GET /{psid}?fields=first_name,last_name,name` with the
//! token of the page the customer wrote to.

use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::model::Inner;
use crate::server::Req;

impl Inner {
    /// The page one of whose conversations is with `psid`.
    pub(crate) fn customer_page(&self, psid: &str) -> Option<String> {
        self.pages
            .iter()
            .find(|(_, p)| p.conversations.iter().any(|c| c.psid == psid))
            .map(|(id, _)| id.clone())
    }

    pub(crate) fn profile(&self, req: &Req, psid: &str) -> Response {
        let Some(page) = self.customer_page(psid) else {
            return super::fb_error(400, 100, Some(33), "Object does not exist");
        };
        // A psid is scoped to its page: only that page's token reads it.
        if let Err(refused) = self.auth_page(req, &page) {
            return refused;
        }
        let name = self.pages[&page]
            .conversations
            .iter()
            .find(|c| c.psid == psid)
            .map(|c| c.customer_name.clone())
            .unwrap_or_default();
        let (first, last) = name.split_once(' ').unwrap_or((name.as_str(), ""));
        axum::Json(json!({"id": psid, "name": name, "first_name": first, "last_name": last}))
            .into_response()
    }
}
