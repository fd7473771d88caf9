//! Event id rules (contract §3): the same fact gets the same id however it arrives.

use crate::canonical::sha256_hex;
use crate::lenient::JsonRef;
use crate::{EventId, EventType, PageId, Psid};

/// `message`, `message_echo`: the `mid`, when it is a usable id.
pub fn for_message(mid: &str) -> Option<EventId> {
    EventId::parse(mid).ok()
}

/// `delivery` / `read`: `<type>:<page>:<psid>:<watermark>`.
pub fn for_receipt(kind: EventType, page: &PageId, psid: &Psid, watermark: i64) -> EventId {
    debug_assert!(matches!(kind, EventType::Delivery | EventType::Read));
    known_good(format!("{kind}:{page}:{psid}:{watermark}"))
}

/// `page_change`: `change:<page>:<field>:<time ms>:<sha256 of the value's canonical JSON>`.
/// A field name that is not a safe token is hashed too, so the id stays printable.
/// `value` is a `&serde_json::Value` or a lossless [`JsonRef`].
pub fn for_page_change<'a>(
    page: &PageId,
    field: &str,
    time_ms: i64,
    value: impl Into<JsonRef<'a>>,
) -> EventId {
    let field = if crate::ids::is_safe_token(field) {
        field.to_owned()
    } else {
        sha256_hex(field.as_bytes())
    };
    let value_hash = sha256_hex(value.into().canonical().as_bytes());
    known_good(format!("change:{page}:{field}:{time_ms}:{value_hash}"))
}

/// `page_snapshot`: `snapshot:<page>:<ms when the poller fetched it>`.
pub fn for_snapshot(page: &PageId, fetched_ms: i64) -> EventId {
    known_good(format!("snapshot:{page}:{fetched_ms}"))
}

/// `conversation_status`: `status:<page>:<psid>:<at>`.
pub fn for_status(page: &PageId, psid: &Psid, at_ms: i64) -> EventId {
    known_good(format!("status:{page}:{psid}:{at_ms}"))
}

/// `customer_profile`: `profile:<page>:<psid>:<sha256 of the name>`, so a name seen
/// again by every poll is one fact, and a changed name a new one.
pub fn for_profile(page: &PageId, psid: &Psid, name: &str) -> EventId {
    known_good(format!(
        "profile:{page}:{psid}:{}",
        sha256_hex(name.as_bytes())
    ))
}

/// `unparsed`: `unparsed:<sha256 of the body>`.
pub fn for_unparsed(body: &[u8]) -> EventId {
    known_good(format!("unparsed:{}", sha256_hex(body)))
}

/// Every other type: `<type>:<sha256 of the page id, a newline, and the item's canonical JSON>`.
/// `page` is the page id as received (or `_`), so two invalid ids never collapse: its
/// bytes as [`JsonRef::id_bytes`] gives them. `item` is a `&serde_json::Value` or a
/// lossless [`JsonRef`] (an item serde_json cannot read keeps its own id).
pub fn hashed<'a>(
    kind: EventType,
    page: impl AsRef<[u8]>,
    item: impl Into<JsonRef<'a>>,
) -> EventId {
    let page = page.as_ref();
    let canonical = item.into().canonical();
    let mut material = Vec::with_capacity(page.len() + 1 + canonical.len());
    material.extend_from_slice(page);
    material.push(b'\n');
    material.extend_from_slice(canonical.as_bytes());
    known_good(format!("{kind}:{}", sha256_hex(&material)))
}

/// Ids assembled here only from validated tokens, numbers and hex.
fn known_good(s: String) -> EventId {
    EventId::parse(s).expect("assembled from validated parts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::canonical_json;
    use serde_json::json;

    fn page() -> PageId {
        PageId::parse("101").unwrap()
    }

    #[test]
    fn receipt_ids_follow_the_contract_layout() {
        let psid = Psid::parse("202").unwrap();
        assert_eq!(
            for_receipt(EventType::Read, &page(), &psid, 1458668856253).as_str(),
            "read:101:202:1458668856253"
        );
        assert_eq!(for_status(&page(), &psid, 7).as_str(), "status:101:202:7");
        assert_eq!(for_snapshot(&page(), 9).as_str(), "snapshot:101:9");
    }

    #[test]
    fn page_change_ids_ignore_key_order_in_the_value() {
        let a = for_page_change(&page(), "name", 5, &json!({"x": 1, "y": 2}));
        let b = for_page_change(&page(), "name", 5, &json!({"y": 2, "x": 1}));
        assert_eq!(a, b);
        assert!(a.as_str().starts_with("change:101:name:5:"));
        assert_ne!(
            a,
            for_page_change(&page(), "name", 6, &json!({"x": 1, "y": 2}))
        );
    }

    #[test]
    fn hashed_ids_depend_on_page_and_item_but_not_key_order() {
        let a = hashed(EventType::Reaction, "101", &json!({"a": 1, "b": 2}));
        assert_eq!(
            a,
            hashed(EventType::Reaction, "101", &json!({"b": 2, "a": 1}))
        );
        assert_ne!(
            a,
            hashed(EventType::Reaction, "102", &json!({"a": 1, "b": 2}))
        );
        let expected = sha256_hex(b"101\n{\"a\":1,\"b\":2}");
        assert_eq!(a.as_str(), format!("reaction:{expected}"));
    }

    #[test]
    fn items_serde_json_cannot_read_keep_ids_of_their_own() {
        let read = |t: &str| crate::lenient::Lenient::parse(t).unwrap();
        let (a, b) = (read(r#"{"t":"\ud83d"}"#), read(r#"{"t":"\udc00"}"#));
        let ida = hashed(EventType::Unknown, "101", a.view());
        assert_ne!(ida, hashed(EventType::Unknown, "101", b.view()));
        assert_eq!(
            ida,
            hashed(
                EventType::Unknown,
                "101",
                read(r#"{ "t" : "\uD83D" }"#).view()
            )
        );
        let expected = sha256_hex(b"101\n{\"t\":\"\\ud83d\"}");
        assert_eq!(ida.as_str(), format!("unknown:{expected}"));
        // What serde_json reads has the id it always had.
        let plain = read(r#"{"b": 2, "a": [1.50, "\u00e4"]}"#);
        assert_eq!(
            hashed(EventType::Unknown, "101", plain.view()),
            hashed(EventType::Unknown, "101", plain.value())
        );
        let value = json!({"b": 2, "a": [1.5, "ä"]});
        let material = format!("101\n{}", canonical_json(&value));
        assert_eq!(
            hashed(EventType::Unknown, "101", plain.view()).as_str(),
            format!("unknown:{}", sha256_hex(material.as_bytes()))
        );
    }

    #[test]
    fn unparsed_ids_hash_the_raw_body() {
        assert_eq!(
            for_unparsed(b"abc").as_str(),
            "unparsed:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
