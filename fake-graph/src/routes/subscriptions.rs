//! `/{page}/subscribed_apps`: GET lists the app's subscription, POST subscribes.

use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{fb_error, paged};
use crate::model::Inner;
use crate::server::Req;

impl Inner {
    pub(crate) fn subscribed_apps(&self, req: &Req, page: &str) -> Response {
        if let Err(r) = self.auth_page(req, page) {
            return r;
        }
        let data = match &self.pages[page].subscribed_fields {
            Some(f) => vec![json!({"id": self.app_id, "name": "pagesync", "subscribed_fields": f})],
            None => Vec::new(),
        };
        paged(data, None)
    }

    pub(crate) fn subscribe(&mut self, req: &Req, page: &str) -> Response {
        if let Err(r) = self.auth_page(req, page) {
            return r;
        }
        let Some(fields) = req.param("subscribed_fields") else {
            return fb_error(
                400,
                100,
                None,
                "(#100) The parameter subscribed_fields is required",
            );
        };
        let fields: Vec<String> = fields.split(',').map(|s| s.trim().to_owned()).collect();
        self.pages.get_mut(page).expect("checked").subscribed_fields = Some(fields);
        axum::Json(json!({"success": true})).into_response()
    }
}
