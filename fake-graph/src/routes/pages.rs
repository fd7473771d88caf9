//! Pages and conversations: the page node, `/{page}/conversations` with nested
//! message paging, and `/{conversation}/messages`.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{fb_error, graph_time, offset, paged};
use crate::FakeMessage;
use crate::model::{FakeConversation, Inner};
use crate::query::encode;
use crate::server::Req;

/// `messages.limit(N)` in a `fields` value.
pub(crate) fn nested_limit(fields: &str) -> Option<usize> {
    let start = fields.find("messages.limit(")? + "messages.limit(".len();
    let end = fields[start..].find(')')? + start;
    fields[start..end].parse().ok()
}

impl Inner {
    pub(crate) fn page_node(&self, req: &Req, page: &str) -> Response {
        if let Err(r) = self.auth_page(req, page) {
            return r;
        }
        let p = &self.pages[page];
        let wanted = req.param("fields").unwrap_or_else(|| "id,name".into());
        let mut out = serde_json::Map::new();
        for f in wanted.split(',') {
            if let Some(v) = p.fields.get(f) {
                out.insert(f.into(), v.clone());
            }
        }
        out.insert("id".into(), page.into());
        axum::Json(Value::Object(out)).into_response()
    }

    /// The id of the page's linked Instagram account, when it has one.
    pub(crate) fn instagram_account(&self, page: &str) -> Option<&str> {
        self.pages[page]
            .fields
            .get("instagram_business_account")?
            .get("id")?
            .as_str()
    }

    pub(crate) fn message_json(
        &self,
        page: &str,
        conv: &FakeConversation,
        m: &FakeMessage,
    ) -> Value {
        let page_name = self.pages[page]
            .fields
            .get("name")
            .cloned()
            .unwrap_or(Value::Null);
        let (page_p, cust) = match self.instagram_account(page) {
            // Instagram's message nodes name people by `username` and id (IGSID, IGID).
            Some(account) if conv.instagram => (
                json!({"id": account, "username": format!("shop_{page}")}),
                json!({"id": conv.psid, "username": format!("customer_{}", conv.psid)}),
            ),
            _ => (
                json!({"id": page, "name": page_name, "email": format!("{page}@facebook.com")}),
                json!({"id": conv.psid, "name": conv.customer_name, "email": format!("{}@facebook.com", conv.psid)}),
            ),
        };
        let (from, to) = if m.from_page {
            (page_p, cust)
        } else {
            (cust, page_p)
        };
        let mut v = json!({
            "id": m.id,
            "created_time": graph_time(m.created),
            "from": from,
            "to": {"data": [to]},
            "message": m.text,
        });
        if let Some((mime, url)) = &m.attachment {
            let mut a = json!({"id": format!("att_{}", m.id), "mime_type": mime, "name": "file"});
            if mime.starts_with("image/") {
                a["image_data"] =
                    json!({"url": url, "preview_url": url, "width": 100, "height": 100});
            } else if mime.starts_with("video/") {
                a["video_data"] =
                    json!({"url": url, "preview_url": url, "width": 100, "height": 100});
            } else {
                a["file_url"] = url.clone().into();
            }
            v["attachments"] = json!({"data": [a]});
        }
        v
    }

    /// One nested messages page starting at `from` of the readable ones.
    pub(crate) fn messages_page(
        &self,
        page: &str,
        conv: &FakeConversation,
        from: usize,
        limit: usize,
        token: &str,
    ) -> Value {
        let readable = conv.readable();
        let size = limit.min(self.nested_page_size).max(1);
        let chunk: Vec<Value> = readable
            .iter()
            .skip(from)
            .take(size)
            .map(|m| self.message_json(page, conv, m))
            .collect();
        let mut out = json!({"data": chunk});
        if from + size < readable.len() {
            out["paging"] = json!({
                "cursors": {"after": format!("c{}", from + size)},
                "next": format!(
                    "{}/{}/messages?fields=id%2Cmessage%2Cfrom%2Cto%2Ccreated_time%2Cattachments&limit={limit}&after=c{}&access_token={}",
                    self.base_url, conv.id, from + size, encode(token)
                ),
            });
        }
        out
    }

    pub(crate) fn conversations(&self, req: &Req, page: &str) -> Response {
        if let Err(r) = self.auth_page(req, page) {
            return r;
        }
        let token = req.param("access_token").unwrap_or_default();
        let fields = req.param("fields").unwrap_or_default();
        // Facebook lists Messenger conversations unless `platform=instagram` is asked.
        let platform = req.param("platform").unwrap_or_else(|| "messenger".into());
        let instagram = platform == "instagram";
        let mut convs: Vec<&FakeConversation> = self.pages[page]
            .conversations
            .iter()
            .filter(|c| c.instagram == instagram)
            .collect();
        convs.sort_by(|a, b| b.updated().cmp(&a.updated()).then(a.id.cmp(&b.id)));
        let size = req
            .param("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(self.conversations_page_size)
            .min(self.conversations_page_size);
        let from = offset(req);
        let is_last = from + size >= convs.len();
        let next_url = |after: usize, extra: &str| {
            format!(
                "{}/{page}/conversations?platform={}&fields={}&limit={size}&after=c{after}{extra}&access_token={}",
                self.base_url,
                encode(&platform),
                encode(&fields),
                encode(&token)
            )
        };
        if is_last && self.empty_page_before_last && from > 0 && req.param("e").is_none() {
            return paged(Vec::new(), Some(next_url(from, "&e=1")));
        }
        let data: Vec<Value> = convs
            .iter()
            .skip(from)
            .take(size)
            .map(|c| {
                let participants = match self.instagram_account(page) {
                    Some(account) if c.instagram => json!([
                        {"id": c.psid, "username": format!("customer_{}", c.psid)},
                        {"id": account, "username": format!("shop_{page}")},
                    ]),
                    _ => json!([
                        {"id": c.psid, "name": c.name_in_participants.then_some(&c.customer_name), "email": format!("{}@facebook.com", c.psid)},
                        {"id": page, "name": self.pages[page].fields.get("name"), "email": format!("{page}@facebook.com")},
                    ]),
                };
                let mut v = json!({
                    "id": c.id,
                    "updated_time": c.updated().map(graph_time),
                    "participants": {"data": participants},
                });
                if fields.contains("messages") {
                    let limit = nested_limit(&fields).unwrap_or(25);
                    v["messages"] = self.messages_page(page, c, 0, limit, &token);
                }
                v
            })
            .collect();
        paged(data, (!is_last).then(|| next_url(from + size, "")))
    }

    pub(crate) fn nested(&self, req: &Req, conv_id: &str) -> Response {
        let Some((page, conv)) = self.pages.iter().find_map(|(pid, p)| {
            p.conversations
                .iter()
                .find(|c| c.id == conv_id)
                .map(|c| (pid.clone(), c))
        }) else {
            return fb_error(400, 100, Some(33), "Unsupported get request.");
        };
        if let Err(r) = self.auth_page(req, &page) {
            return r;
        }
        let token = req.param("access_token").unwrap_or_default();
        let limit = req
            .param("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(25);
        axum::Json(self.messages_page(&page, conv, offset(req), limit, &token)).into_response()
    }
}
