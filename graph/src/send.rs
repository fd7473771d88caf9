//! The Send API, `POST /{page_id}/messages`: one call for every kind of message.
//!
//! A message is not idempotent on Facebook's side, so the call is repeated only
//! when Facebook certainly did not take it (see [`CallKind::Send`]).

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Call, CallKind, GraphClient};
use crate::error::GraphError;
use crate::token::AccessToken;
use crate::types::{MessagingType, SendResult};

/// The kinds of attachment the Send API takes by URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    Image,
    Video,
    Audio,
    File,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::File => "file",
        }
    }
}

/// What a Send API call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingMessage<'a> {
    Text(&'a str),
    /// One attachment Facebook fetches from `url`.
    Attachment {
        kind: AttachmentKind,
        url: &'a str,
    },
}

impl OutgoingMessage<'_> {
    /// The `message` object of the Send API request.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text(text) => json!({ "text": text }),
            Self::Attachment { kind, url } => json!({
                "attachment": {"type": kind.as_str(), "payload": {"url": url, "is_reusable": false}}
            }),
        }
    }
}

/// The request body: recipient, message, and the messaging type (with its tag).
pub fn send_body(
    psid: &str,
    message: &OutgoingMessage<'_>,
    messaging_type: MessagingType,
) -> Value {
    let mut body = json!({
        "recipient": {"id": psid},
        "message": message.to_json(),
    });
    match messaging_type {
        MessagingType::Response => body["messaging_type"] = "RESPONSE".into(),
        MessagingType::Update => body["messaging_type"] = "UPDATE".into(),
        MessagingType::MessageTag(tag) => {
            body["messaging_type"] = "MESSAGE_TAG".into();
            body["tag"] = tag.into();
        }
    }
    body
}

impl GraphClient {
    /// Sends `message` to `psid` from `page_id` (for Instagram: the linked Facebook
    /// page, with its token). Throttling, transient error codes, 5xx answers and
    /// failed connections are retried with the client's jittered backoff; a timeout
    /// or a lost connection is not (the message may have gone out).
    pub async fn send(
        &self,
        page_id: &str,
        token: &AccessToken,
        psid: &str,
        message: &OutgoingMessage<'_>,
        messaging_type: MessagingType,
    ) -> Result<SendResult, GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.url(&format!("{page_id}/messages")),
            token: Some(token),
            page: Some(page_id),
            form: Vec::new(),
            json: Some(send_body(psid, message, messaging_type)),
            kind: CallKind::Send,
        };
        self.execute(call).await
    }

    /// [`GraphClient::send`] of a text.
    pub async fn send_text(
        &self,
        page_id: &str,
        token: &AccessToken,
        psid: &str,
        text: &str,
        messaging_type: MessagingType,
    ) -> Result<SendResult, GraphError> {
        self.send(
            page_id,
            token,
            psid,
            &OutgoingMessage::Text(text),
            messaging_type,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attachment_is_sent_by_url_with_its_type() {
        let message = OutgoingMessage::Attachment {
            kind: AttachmentKind::Video,
            url: "https://cdn.example.test/a.mp4",
        };
        let body = send_body("42", &message, MessagingType::Response);
        assert_eq!(
            body,
            json!({
                "recipient": {"id": "42"},
                "messaging_type": "RESPONSE",
                "message": {"attachment": {"type": "video",
                    "payload": {"url": "https://cdn.example.test/a.mp4", "is_reusable": false}}}
            })
        );
    }

    #[test]
    fn a_human_agent_reply_carries_the_tag() {
        let body = send_body(
            "42",
            &OutgoingMessage::Text("hi"),
            MessagingType::MessageTag("HUMAN_AGENT"),
        );
        assert_eq!(body["messaging_type"], "MESSAGE_TAG");
        assert_eq!(body["tag"], "HUMAN_AGENT");
        assert_eq!(body["message"], json!({"text": "hi"}));
    }
}
