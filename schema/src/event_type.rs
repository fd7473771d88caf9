//! The closed set of event types (contract §3).

use std::fmt;

/// What an event is. `facebook.<as_str()>` is its CloudEvents `type`, and
/// `as_str()` is the last token of its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Message,
    MessageEcho,
    MessageEdit,
    Reaction,
    Postback,
    Delivery,
    Read,
    Optin,
    Referral,
    Standby,
    PageChange,
    PageSnapshot,
    ConversationStatus,
    /// The poller (or oauth-api) learned the customer's name (docs/events.md).
    CustomerProfile,
    Unknown,
    Invalid,
    Unparsed,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl EventType {
    pub const ALL: [EventType; 17] = [
        Self::Message,
        Self::MessageEcho,
        Self::MessageEdit,
        Self::Reaction,
        Self::Postback,
        Self::Delivery,
        Self::Read,
        Self::Optin,
        Self::Referral,
        Self::Standby,
        Self::PageChange,
        Self::PageSnapshot,
        Self::ConversationStatus,
        Self::CustomerProfile,
        Self::Unknown,
        Self::Invalid,
        Self::Unparsed,
    ];

    /// The keys of a `messaging[]` item that name its type, in the order they are tried.
    /// `message` is first; an echo is told apart by `message.is_echo`.
    pub const MESSAGING_KEYS: [(&'static str, EventType); 8] = [
        ("message", Self::Message),
        ("message_edit", Self::MessageEdit),
        ("reaction", Self::Reaction),
        ("postback", Self::Postback),
        ("delivery", Self::Delivery),
        ("read", Self::Read),
        ("optin", Self::Optin),
        ("referral", Self::Referral),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::MessageEcho => "message_echo",
            Self::MessageEdit => "message_edit",
            Self::Reaction => "reaction",
            Self::Postback => "postback",
            Self::Delivery => "delivery",
            Self::Read => "read",
            Self::Optin => "optin",
            Self::Referral => "referral",
            Self::Standby => "standby",
            Self::PageChange => "page_change",
            Self::PageSnapshot => "page_snapshot",
            Self::ConversationStatus => "conversation_status",
            Self::CustomerProfile => "customer_profile",
            Self::Unknown => "unknown",
            Self::Invalid => "invalid",
            Self::Unparsed => "unparsed",
        }
    }

    /// The CloudEvents `type` attribute.
    pub fn cloudevents_type(self) -> String {
        format!("facebook.{}", self.as_str())
    }

    /// Parses a CloudEvents `type` such as `facebook.message`.
    pub fn from_cloudevents_type(s: &str) -> Result<Self, UnknownEventType> {
        s.strip_prefix("facebook.")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }

    /// Types that belong to a conversation and therefore carry a `psid`.
    pub fn is_messaging(self) -> bool {
        matches!(
            self,
            Self::Message
                | Self::MessageEcho
                | Self::MessageEdit
                | Self::Reaction
                | Self::Postback
                | Self::Delivery
                | Self::Read
                | Self::Optin
                | Self::Referral
                | Self::Standby
                | Self::ConversationStatus
                | Self::CustomerProfile
        )
    }
}

impl std::str::FromStr for EventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which producer published an event. The order of the variants is the
/// precedence of contract §3: when copies of one fact differ, the lowest rank wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Ingest,
    OauthApi,
    Poller,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "pagesync/ingest",
            Self::OauthApi => "pagesync/oauth-api",
            Self::Poller => "pagesync/poller",
        }
    }

    /// Smaller is stronger: ingest 0, oauth-api 1, poller 2.
    pub fn rank(self) -> i16 {
        self as i16
    }
}

impl std::str::FromStr for Source {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Ingest, Self::OauthApi, Self::Poller]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_names() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(
                EventType::from_cloudevents_type(&t.cloudevents_type()).unwrap(),
                t
            );
        }
        assert!(EventType::from_cloudevents_type("message").is_err());
    }

    #[test]
    fn ingest_outranks_oauth_api_which_outranks_poller() {
        assert!(Source::Ingest.rank() < Source::OauthApi.rank());
        assert!(Source::OauthApi.rank() < Source::Poller.rank());
        assert_eq!("pagesync/poller".parse::<Source>().unwrap(), Source::Poller);
    }
}
