//! What the inbox answers: a conversation's list item and a message (contract §6).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::window::{ReplyWindow, reply_window};

/// One conversation as the list, the single route and `/api/events` show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationItem {
    pub page_id: String,
    pub psid: String,
    /// `open` or `closed`.
    #[schema(pattern = "^(open|closed)$")]
    pub status: String,
    pub last_message_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_message_text: Option<String>,
    pub message_count: i32,
    /// The customer's messages after the later of the page's last reply and the
    /// read watermark.
    pub unread: i32,
    /// `messenger` or `instagram`.
    #[schema(pattern = "^(messenger|instagram)$")]
    pub platform: String,
    /// As Facebook gives it; null when unknown.
    #[schema(required = true)]
    pub customer_name: Option<String>,
    pub reply_window: ReplyWindow,
}

/// A conversation item with what the live feed needs to route it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub item: ConversationItem,
    /// Sort key: the newest message's time (ms).
    pub last_message_ms: i64,
    /// Who may see it (`pages.owner_user_id`; none: operators only).
    pub owner: Option<Uuid>,
}

/// The columns [`Listed::from_row`] reads, in order (`c` conversations, `p` pages).
pub const LISTED_COLUMNS: &str = "c.page_id, c.psid, c.status, c.last_message_at, \
    c.last_message_text, c.message_count, c.unread_count, c.platform, c.customer_name, \
    c.last_in_ms, c.last_message_ms, p.owner_user_id";

impl Listed {
    /// `human_agent` is `MESSENGER_HUMAN_AGENT`; the window is computed at `now`.
    pub fn from_row(r: &Row, now: DateTime<Utc>, human_agent: bool) -> Self {
        let last_in: Option<i64> = r.get(9);
        let last_in = last_in.and_then(DateTime::from_timestamp_millis);
        Self {
            item: ConversationItem {
                page_id: r.get(0),
                psid: r.get(1),
                status: r.get(2),
                last_message_at: r.get(3),
                last_message_text: r.get(4),
                message_count: r.get(5),
                unread: r.get(6),
                platform: r.get(7),
                customer_name: r.get(8),
                reply_window: reply_window(last_in, now, human_agent),
            },
            last_message_ms: r.get::<_, Option<i64>>(10).unwrap_or_default(),
            owner: r.get(11),
        }
    }
}

/// A reaction standing on a message now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reaction {
    /// Facebook's name for it (`love`, `like`, …; `other` for any other emoji).
    #[schema(required = true)]
    pub reaction: Option<String>,
    #[schema(required = true)]
    pub emoji: Option<String>,
    /// `customer` or `page`.
    #[schema(pattern = "^(customer|page)$")]
    pub by: String,
}

/// One message of a conversation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageItem {
    pub mid: String,
    /// `in` (from the customer) or `out` (from the page).
    #[schema(pattern = "^(in|out)$")]
    pub direction: String,
    /// The newest text (after edits).
    #[schema(required = true)]
    pub text: Option<String>,
    /// Facebook's attachments, as received.
    #[schema(required = true, value_type = Option<Vec<Object>>)]
    pub attachments: Option<Value>,
    pub timestamp: DateTime<Utc>,
    /// The winning copy's origin: `webhook`, `poll` or `send`.
    #[schema(pattern = "^(webhook|poll|send)$")]
    pub source: String,
    /// An outgoing message's sending app; null for incoming ones or when unknown.
    #[schema(required = true)]
    pub app_id: Option<String>,
    pub reactions: Vec<Reaction>,
    /// How many times it was edited.
    pub edited: i32,
    /// Outgoing: at or before the delivery (or read) watermark. Incoming: null.
    #[schema(required = true)]
    pub delivered: Option<bool>,
    /// Outgoing: at or before the read watermark. Incoming: null.
    #[schema(required = true)]
    pub read: Option<bool>,
}

/// The columns [`MessageItem::from_row`] reads, in order.
pub const MESSAGE_COLUMNS: &str = "m.item_id, m.direction, \
    coalesce(edit.text, m.text), m.attachments, m.timestamp_ms, m.source, m.app_id, \
    coalesce(edit.n, 0), rc.delivery_watermark, rc.read_watermark, \
    coalesce(reactions.names, '{}'), coalesce(reactions.emojis, '{}'), coalesce(reactions.by_page, '{}')";

impl MessageItem {
    pub fn from_row(r: &Row) -> Self {
        let ts: i64 = r.get(4);
        let outgoing = r.get::<_, &str>(1) == "out";
        let delivery: Option<i64> = r.get(8);
        let read: Option<i64> = r.get(9);
        let at_or_before = |mark: Option<i64>| outgoing.then_some(mark.is_some_and(|w| ts <= w));
        let names: Vec<Option<String>> = r.get(10);
        let emojis: Vec<Option<String>> = r.get(11);
        let by_page: Vec<bool> = r.get(12);
        let reactions = names
            .into_iter()
            .zip(emojis)
            .zip(by_page)
            .map(|((reaction, emoji), by_page)| Reaction {
                reaction,
                emoji,
                by: if by_page { "page" } else { "customer" }.to_owned(),
            })
            .collect();
        Self {
            mid: r.get(0),
            direction: r.get(1),
            text: r.get(2),
            attachments: r.get(3),
            timestamp: DateTime::from_timestamp_millis(ts).unwrap_or_default(),
            source: origin(r.get(5)).to_owned(),
            app_id: r.get(6),
            reactions,
            edited: r.get(7),
            // A message read is a message delivered, whichever receipt came.
            delivered: at_or_before(delivery.max(read)),
            read: at_or_before(read),
        }
    }
}

/// The inbox's name for a stored copy's source.
fn origin(source: &str) -> &'static str {
    match source {
        "pagesync/ingest" => "webhook",
        "pagesync/poller" => "poll",
        _ => "send",
    }
}
