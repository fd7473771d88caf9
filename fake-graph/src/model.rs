//! The fake's state: pages, their conversations and messages, users, login codes,
//! programmed faults, the request log and what the Send API sent.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use pagesync_schema::signature::AppSecret;
use serde_json::Value;

use crate::LoggedRequest;
use crate::faults::FaultRule;

/// Facebook returns details only for a conversation's 20 most recent messages.
const READABLE_MESSAGES: usize = 20;

/// A message in a fake conversation.
#[derive(Debug, Clone)]
pub struct FakeMessage {
    pub id: String,
    /// Sent by the page (an echo in webhook terms) rather than the customer.
    pub from_page: bool,
    pub text: String,
    pub created: DateTime<Utc>,
    /// `(mime type, url)` of one attachment.
    pub attachment: Option<(String, String)>,
}

impl FakeMessage {
    pub fn customer(id: &str, text: &str, created: DateTime<Utc>) -> Self {
        Self {
            id: id.into(),
            from_page: false,
            text: text.into(),
            created,
            attachment: None,
        }
    }

    pub fn page(id: &str, text: &str, created: DateTime<Utc>) -> Self {
        Self {
            from_page: true,
            ..Self::customer(id, text, created)
        }
    }

    pub fn with_attachment(mut self, mime: &str, url: &str) -> Self {
        self.attachment = Some((mime.into(), url.into()));
        self
    }
}

#[derive(Debug, Clone)]
pub(crate) struct FakeConversation {
    pub(crate) id: String,
    pub(crate) psid: String,
    pub(crate) customer_name: String,
    /// Whether `participants` carries the name (else only the User Profile API does).
    pub(crate) name_in_participants: bool,
    pub(crate) messages: Vec<FakeMessage>,
    /// An Instagram conversation of the page's linked account (`platform=instagram`).
    pub(crate) instagram: bool,
}

impl FakeConversation {
    pub(crate) fn updated(&self) -> Option<DateTime<Utc>> {
        self.messages.iter().map(|m| m.created).max()
    }

    /// Readable messages, newest first.
    pub(crate) fn readable(&self) -> Vec<&FakeMessage> {
        let mut v: Vec<&FakeMessage> = self.messages.iter().collect();
        v.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        v.truncate(READABLE_MESSAGES);
        v
    }
}

#[derive(Debug, Clone)]
pub(crate) struct FakePage {
    pub(crate) token: String,
    pub(crate) revoked: bool,
    pub(crate) fields: serde_json::Map<String, Value>,
    pub(crate) subscribed_fields: Option<Vec<String>>,
    pub(crate) conversations: Vec<FakeConversation>,
}

/// A message sent through the fake Send API.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub page_id: String,
    pub psid: String,
    /// Empty for an attachment.
    pub text: String,
    /// `(type, url)` of an attachment sent by URL.
    pub attachment: Option<(String, String)>,
    pub messaging_type: String,
    pub tag: Option<String>,
    pub message_id: String,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) base_url: String,
    pub(crate) app_id: String,
    pub(crate) app_secret: AppSecret,
    /// The secret's text, compared as `client_secret` in code exchanges.
    pub(crate) client_secret: String,
    pub(crate) pages: BTreeMap<String, FakePage>,
    pub(crate) users: HashMap<String, Vec<String>>,
    pub(crate) codes: HashMap<String, String>,
    pub(crate) faults: Vec<FaultRule>,
    pub(crate) latency: Duration,
    pub(crate) log: Vec<LoggedRequest>,
    /// `(method, path)` of every request as it arrived, answered or not.
    pub(crate) arrivals: Vec<(axum::http::Method, String)>,
    pub(crate) sent: Vec<SentMessage>,
    pub(crate) conversations_page_size: usize,
    pub(crate) nested_page_size: usize,
    pub(crate) accounts_page_size: usize,
    pub(crate) empty_page_before_last: bool,
    pub(crate) app_usage_percent: Option<u32>,
    pub(crate) next_id: u64,
}

impl Inner {
    pub(crate) fn new(base_url: String, app_id: &str, app_secret: &str) -> Self {
        Self {
            base_url,
            app_id: app_id.into(),
            app_secret: AppSecret::new(&secrecy::SecretString::from(app_secret.to_owned())),
            client_secret: app_secret.into(),
            pages: BTreeMap::new(),
            users: HashMap::new(),
            codes: HashMap::new(),
            faults: Vec::new(),
            latency: Duration::ZERO,
            log: Vec::new(),
            arrivals: Vec::new(),
            sent: Vec::new(),
            conversations_page_size: 25,
            nested_page_size: 25,
            accounts_page_size: 25,
            empty_page_before_last: false,
            app_usage_percent: None,
            next_id: 1,
        }
    }
}

/// Every webhook field a page can be subscribed to.
pub(crate) const ALL_FIELDS: [&str; 9] = [
    "messages",
    "messaging_postbacks",
    "messaging_optins",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "message_reactions",
    "messaging_referrals",
    "standby",
];

pub(crate) type Shared = Arc<Mutex<Inner>>;
