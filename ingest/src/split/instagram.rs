//! What is Instagram's own in a delivery of `"object": "instagram"` (contract §8).

use pagesync_schema::EventType;
use serde_json::Value;

/// The `messaging[]` keys that name an Instagram item's type, in the order they are
/// tried. Instagram has no `delivery` or `optin`; its seen receipt is `read` (the
/// `messaging_seen` field), also accepted under the field's own name.
pub(super) const MESSAGING_KEYS: [(&str, EventType); 7] = [
    ("message", EventType::Message),
    ("message_edit", EventType::MessageEdit),
    ("reaction", EventType::Reaction),
    ("postback", EventType::Postback),
    ("read", EventType::Read),
    ("messaging_seen", EventType::Read),
    ("referral", EventType::Referral),
];

/// An unsend: `message.is_deleted` (Instagram), read as leniently as `is_echo`.
pub(super) fn is_unsend(item: &Value) -> bool {
    pagesync_schema::lenient::field::flag(item.pointer("/message/is_deleted"))
}
