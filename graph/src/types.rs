//! Typed Graph API responses, read leniently.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::lenient::{de_id, de_opt_id, de_opt_int, de_opt_time};
use crate::token::AccessToken;

/// One result page of an edge.
#[derive(Debug, Clone, Deserialize)]
pub struct Paged<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Paging {
    #[serde(default)]
    pub next: Option<String>,
}

impl<T> Paged<T> {
    pub fn next(&self) -> Option<&str> {
        self.paging.as_ref()?.next.as_deref()
    }
}

/// The page node: its id and every field as Facebook returned it (never a token).
#[derive(Debug, Clone)]
pub struct PageNode {
    pub id: String,
    pub fields: Map<String, Value>,
}

impl PageNode {
    pub(crate) fn from_value(mut v: Value) -> Result<Self, &'static str> {
        // A page node may carry its token, nested too (`page`, linked accounts).
        pagesync_schema::tokens::strip_tokens(&mut v);
        let Value::Object(fields) = v else {
            return Err("page node is not an object");
        };
        let id = fields
            .get("id")
            .and_then(pagesync_schema::lenient::field::id_string)
            .ok_or("page node has no id")?;
        Ok(Self { id, fields })
    }

    /// The page object as JSON, for a `page_snapshot` event.
    pub fn to_value(&self) -> Value {
        Value::Object(self.fields.clone())
    }
}

/// A person or page in `from`, `to` or `participants`.
#[derive(Debug, Clone, Deserialize)]
pub struct Participant {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ParticipantList {
    #[serde(default)]
    pub data: Vec<Participant>,
}

/// A conversation with the first page of its nested messages.
#[derive(Debug, Deserialize)]
pub struct Conversation {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    #[serde(default, deserialize_with = "de_opt_time")]
    pub updated_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub participants: ParticipantList,
    #[serde(default)]
    pub messages: Option<Paged<GraphMessage>>,
}

/// A message as the Graph API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphMessage {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    #[serde(default, deserialize_with = "de_opt_time")]
    pub created_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub from: Option<Participant>,
    #[serde(default)]
    pub to: ParticipantList,
    /// Empty when the message has no text.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub attachments: Option<Paged<GraphAttachment>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GraphAttachment {
    #[serde(default, deserialize_with = "de_opt_id")]
    pub id: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub file_url: Option<String>,
    #[serde(default)]
    pub image_data: Option<MediaData>,
    #[serde(default)]
    pub video_data: Option<MediaData>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MediaData {
    #[serde(default)]
    pub url: Option<String>,
}

impl GraphAttachment {
    /// The webhook attachment `type` for this Graph attachment.
    pub fn webhook_type(&self) -> &'static str {
        let mime = self.mime_type.as_deref().unwrap_or("");
        if self.image_data.is_some() || mime.starts_with("image/") {
            "image"
        } else if self.video_data.is_some() || mime.starts_with("video/") {
            "video"
        } else if mime.starts_with("audio/") {
            "audio"
        } else {
            "file"
        }
    }

    pub fn url(&self) -> Option<&str> {
        self.image_data
            .as_ref()
            .and_then(|d| d.url.as_deref())
            .or_else(|| self.video_data.as_ref().and_then(|d| d.url.as_deref()))
            .or(self.file_url.as_deref())
    }
}

/// One entry of `GET /{page_id}/subscribed_apps`.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscribedApp {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub subscribed_fields: Vec<String>,
}

/// One page of `GET /me/accounts`, with its page token.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountPage {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub category_list: Vec<Value>,
    #[serde(default)]
    pub tasks: Vec<String>,
    pub access_token: AccessToken,
    /// The page's linked Instagram professional account, when it has one.
    #[serde(default)]
    pub instagram_business_account: Option<LinkedAccount>,
}

/// A node Facebook links to another by id (`instagram_business_account`).
#[derive(Debug, Clone, Deserialize)]
pub struct LinkedAccount {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
}

/// `oauth/access_token`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenGrant {
    pub access_token: AccessToken,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default, deserialize_with = "de_opt_int")]
    pub expires_in: Option<i64>,
}

/// The Send API's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct SendResult {
    #[serde(default, deserialize_with = "de_opt_id")]
    pub recipient_id: Option<String>,
    #[serde(deserialize_with = "de_id")]
    pub message_id: String,
}

/// `messaging_type` of a Send API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagingType {
    Response,
    Update,
    /// Outside the 24-hour window, with a tag such as `HUMAN_AGENT`.
    MessageTag(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_times_are_read_as_numbers_or_strings() {
        let c: Conversation = serde_json::from_value(serde_json::json!({
            "id": 123, "updated_time": "2022-07-12T19:11:07+0000",
            "participants": {"data": [{"id": 42, "name": "A"}]},
            "messages": {"data": [{"id": "m_1", "created_time": 1657653067, "from": {"id": "42"}, "message": ""}]}
        }))
        .unwrap();
        assert_eq!(c.id, "123");
        assert_eq!(c.updated_time.unwrap().timestamp(), 1657653067);
        assert_eq!(c.participants.data[0].id, "42");
        let m = &c.messages.unwrap().data[0];
        assert_eq!(m.created_time.unwrap().timestamp(), 1657653067);
    }

    #[test]
    fn a_page_node_never_keeps_a_token() {
        let p = PageNode::from_value(serde_json::json!(
            {"id": "1", "name": "N", "access_token": "EAAB1", "page": {"access_token": "EAAB2"}}
        ))
        .unwrap();
        assert!(!p.to_value().to_string().contains("EAAB"));
    }

    #[test]
    fn attachments_map_to_webhook_types() {
        let a: GraphAttachment = serde_json::from_value(
            serde_json::json!({"id": "1", "mime_type": "image/png", "image_data": {"url": "https://x/i.png"}}),
        )
        .unwrap();
        assert_eq!(
            (a.webhook_type(), a.url()),
            ("image", Some("https://x/i.png"))
        );
        let f: GraphAttachment = serde_json::from_value(
            serde_json::json!({"mime_type": "application/pdf", "file_url": "https://x/f.pdf"}),
        )
        .unwrap();
        assert_eq!(
            (f.webhook_type(), f.url()),
            ("file", Some("https://x/f.pdf"))
        );
    }
}
