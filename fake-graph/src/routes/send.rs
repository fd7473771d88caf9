//! The Send API, `POST /{page}/messages`, with the 24-hour window and the
//! `HUMAN_AGENT` tag's seven days.

use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::fb_error;
use crate::model::{FakeConversation, Inner};
use crate::server::Req;
use crate::{FakeMessage, SentMessage};

impl Inner {
    pub(crate) fn send(&mut self, req: &Req, page: &str) -> Response {
        if let Err(r) = self.auth_page(req, page) {
            return r;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return fb_error(400, 100, None, "(#100) Invalid JSON body");
        };
        let psid = body["recipient"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some((text, attachment)) = message_content(&body["message"]) else {
            return fb_error(
                400,
                100,
                None,
                "(#100) Must send either message text or an attachment",
            );
        };
        let messaging_type = body["messaging_type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let tag = body["tag"].as_str().map(str::to_owned);
        let now = Utc::now();
        let Some(conv) = self.pages[page]
            .conversations
            .iter()
            .find(|c| c.psid == psid)
        else {
            return fb_error(400, 100, Some(2018001), "(#100) No matching user found");
        };
        if let Some(refusal) = window_refusal(conv, &messaging_type, tag.as_deref(), now) {
            return refusal;
        }
        let mid = format!("m_sent_{}", self.next_id);
        self.next_id += 1;
        let conv = self
            .pages
            .get_mut(page)
            .expect("checked")
            .conversations
            .iter_mut()
            .find(|c| c.psid == psid)
            .expect("checked");
        let mut echo = FakeMessage::page(&mid, &text, now);
        if let Some((kind, url)) = &attachment {
            echo = echo.with_attachment(kind, url);
        }
        conv.messages.push(echo);
        self.sent.push(SentMessage {
            page_id: page.into(),
            psid: psid.clone(),
            text,
            attachment,
            messaging_type,
            tag,
            message_id: mid.clone(),
        });
        axum::Json(json!({"recipient_id": psid, "message_id": mid})).into_response()
    }
}

/// Facebook's answer when the message may not be sent now: outside the 24-hour
/// window (seven days with `HUMAN_AGENT`), an unsupported tag, no messaging type.
fn window_refusal(
    conv: &FakeConversation,
    messaging_type: &str,
    tag: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Response> {
    let last_customer = conv
        .messages
        .iter()
        .filter(|m| !m.from_page)
        .map(|m| m.created)
        .max();
    let age = last_customer.map(|t| now - t);
    let within = |h: i64| age.is_some_and(|a| a <= chrono::Duration::hours(h));
    let allowed = match (messaging_type, tag) {
        ("RESPONSE" | "UPDATE", _) => within(24),
        ("MESSAGE_TAG", Some("HUMAN_AGENT")) => within(24 * 7),
        ("MESSAGE_TAG", Some(_)) => {
            return Some(fb_error(
                400,
                100,
                None,
                "(#100) This message tag is no longer supported",
            ));
        }
        _ => {
            return Some(fb_error(
                400,
                100,
                None,
                "(#100) messaging_type is required",
            ));
        }
    };
    (!allowed).then(|| {
        fb_error(
            400,
            10,
            Some(2018278),
            "(#10) This message is sent outside of allowed window.",
        )
    })
}

/// The text (empty for an attachment) and the `(type, url)` of an attachment sent
/// by URL; `None` when the message has neither, or both, as Facebook refuses.
fn message_content(message: &Value) -> Option<(String, Option<(String, String)>)> {
    let text = message["text"].as_str().filter(|t| !t.is_empty());
    let attachment = message.get("attachment").map(|a| {
        let kind = a["type"].as_str().unwrap_or_default().to_owned();
        let url = a["payload"]["url"].as_str().unwrap_or_default().to_owned();
        (kind, url)
    });
    match (text, attachment) {
        (Some(t), None) => Some((t.to_owned(), None)),
        (None, Some(a)) if !a.0.is_empty() && !a.1.is_empty() => Some((String::new(), Some(a))),
        _ => None,
    }
}
