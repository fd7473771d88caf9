//! Reading the parts of a delivery without judging what is inside them: an
//! object's members whatever their keys' escapes, lists of raw items, ids.

use std::borrow::Cow;
use std::fmt;

use pagesync_schema::NO_PAGE;
use pagesync_schema::lenient::Lenient;
use pagesync_schema::lenient::field::id_string;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of a JSON object, in order. Keys are compared as bytes with their
/// escapes decoded (a key with a lone surrogate is kept, not refused); values
/// stay raw, so nothing inside them can make the object unreadable.
pub(super) struct Members<'a>(Vec<(Cow<'a, [u8]>, &'a RawValue)>);

impl<'a> Members<'a> {
    /// `None` when `raw` is not an object.
    pub fn of(raw: &'a RawValue) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_str(raw.get());
        de.deserialize_map(MembersVisitor).ok()
    }

    /// The member `key` (the last one when repeated, as serde_json reads a map);
    /// `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| **k == *key.as_bytes())
            .map(|(_, v)| *v)
            .filter(|v| v.get() != "null")
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            members.push((key.0, map.next_value::<&'de RawValue>()?));
        }
        Ok(Members(members))
    }
}

/// A key read as bytes: serde_json decodes the escapes and, unlike for a `str`,
/// keeps a lone surrogate (as WTF-8) instead of refusing the object.
struct Key<'a>(Cow<'a, [u8]>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_vec())))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v.as_bytes())))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.as_bytes().to_vec())))
    }
}

/// The items of a JSON array, raw; `None` when `raw` is not an array.
pub(super) fn list(raw: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

/// An entry's page id: as text (for [`pagesync_schema::PageId::parse`]) and as the
/// bytes event ids hash, which tell any two ids apart (a lone surrogate included).
pub(super) struct PageKey {
    pub text: String,
    pub bytes: Vec<u8>,
}

impl PageKey {
    /// No page id, or one that is neither a string nor a number: `_`.
    pub fn none() -> Self {
        Self {
            text: NO_PAGE.to_owned(),
            bytes: NO_PAGE.as_bytes().to_vec(),
        }
    }

    pub fn of(raw: Option<&RawValue>) -> Self {
        let Some(raw) = raw else {
            return Self::none();
        };
        let id = Lenient::of_raw(raw);
        match (id_string(id.value()), id.view().id_bytes()) {
            (Some(text), Some(bytes)) => Self {
                text,
                bytes: bytes.into_owned(),
            },
            _ => Self::none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn members_take_the_last_duplicate_and_decode_escaped_keys() {
        let m = Members::of(raw(r#"{"id":"1","\u0069d":"2","\ud800":3,"x":null}"#)).unwrap();
        assert_eq!(m.get("id").unwrap().get(), r#""2""#);
        assert!(m.get("x").is_none(), "null is absent");
        assert!(m.get("y").is_none());
        assert!(Members::of(raw("[1]")).is_none());
    }

    #[test]
    fn page_keys_tell_lone_surrogates_apart_and_read_numbers_as_text() {
        let a = PageKey::of(Some(raw(r#""\ud800""#)));
        let b = PageKey::of(Some(raw(r#""\ud801""#)));
        assert_eq!(a.text, b.text);
        assert_ne!(a.bytes, b.bytes);
        let n = PageKey::of(Some(raw("101")));
        assert_eq!((n.text.as_str(), n.bytes.as_slice()), ("101", &b"101"[..]));
        assert_eq!(PageKey::of(Some(raw("{}"))).text, NO_PAGE);
    }
}
