//! Reading any JSON text Facebook may send, never failing on what serde_json refuses.
//!
//! serde_json refuses three things that are valid JSON syntax: a lone UTF-16
//! surrogate escape (`"\ud83d"`, a text cut mid-emoji), a number beyond `f64`
//! (`1e400`, a 400-digit integer) and nesting deeper than 128 levels. A
//! [`Lenient`] text is read by serde_json when it can (the fast path: the result
//! is exactly serde_json's) and otherwise by a small reader of our own that keeps
//! every code unit and digit, so that:
//!
//! - [`JsonRef::canonical`] is lossless: distinct values never share a canonical
//!   form (lone surrogates are written `\udxxx`, lowercase; an out-of-range number
//!   as its text; a subtree nested deeper than 128 levels as its text), and for
//!   text serde_json can read it is `canonical_json` of serde_json's value;
//! - [`Lenient::value`] is a lossy `serde_json::Value` for reading fields: a lone
//!   surrogate becomes U+FFFD, an out-of-range number or a too-deep subtree the
//!   string of its text. Duplicate keys: the last one wins, as in serde_json.
//!
//! No crate found does both: the lenient JSON parsers replace lone surrogates
//! with U+FFFD (two different items would share an id) and refuse or round
//! numbers out of range.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Number, Value};

use parse::Parser;

/// Containers nested deeper than this are kept as their raw text (serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// The text is not JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {at}")]
pub struct SyntaxError {
    pub at: usize,
}

/// A JSON text, read leniently.
#[derive(Debug, Clone)]
pub struct Lenient {
    value: Value,
    /// The lossless reading, when serde_json could not read the text.
    exact: Option<Node>,
}

impl Lenient {
    /// Reads `text`; fails only when it is not JSON at all.
    pub fn parse(text: &str) -> Result<Self, SyntaxError> {
        if let Ok(value) = serde_json::from_str(text) {
            return Ok(Self { value, exact: None });
        }
        let node = Parser::new(text).document()?;
        Ok(Self {
            value: node.lossy(),
            exact: Some(node),
        })
    }

    /// Reads a text serde_json's raw-value reader accepted (an item of a delivery,
    /// an event's `data`). Never fails: should our reader ever disagree with
    /// serde_json about the syntax, the text is kept whole, as a too-deep value is.
    pub fn of_raw(raw: &RawValue) -> Self {
        Self::parse(raw.get()).unwrap_or_else(|_| {
            let node = Node::Deep(raw.get().to_owned());
            Self {
                value: node.lossy(),
                exact: Some(node),
            }
        })
    }

    /// The value for reading fields: serde_json's, or the lossy reading.
    pub fn value(&self) -> &Value {
        &self.value
    }

    pub fn into_value(self) -> Value {
        self.value
    }

    /// True when serde_json could not read the text and [`Self::value`] is lossy.
    pub fn is_lossy(&self) -> bool {
        self.exact.is_some()
    }

    /// The lossless view, for canonical forms and ids.
    pub fn view(&self) -> JsonRef<'_> {
        match &self.exact {
            Some(node) => JsonRef(Repr::Node(node)),
            None => JsonRef(Repr::Value(&self.value)),
        }
    }
}

/// `text` as a `serde_json::Value`, read leniently (see the module docs).
pub fn read_value(text: &str) -> Result<Value, SyntaxError> {
    Lenient::parse(text).map(Lenient::into_value)
}

/// A lossless view of a JSON value: serde_json's value, or a node of our reader.
#[derive(Debug, Clone, Copy)]
pub struct JsonRef<'a>(Repr<'a>);

#[derive(Debug, Clone, Copy)]
enum Repr<'a> {
    Value(&'a Value),
    Node(&'a Node),
}

impl<'a> From<&'a Value> for JsonRef<'a> {
    fn from(v: &'a Value) -> Self {
        JsonRef(Repr::Value(v))
    }
}

impl<'a> JsonRef<'a> {
    /// Member `key` of an object (the last one, when the key is repeated).
    pub fn get(self, key: &str) -> Option<JsonRef<'a>> {
        match self.0 {
            Repr::Value(v) => v.get(key).map(|v| JsonRef(Repr::Value(v))),
            Repr::Node(Node::Object(members)) => {
                members.get(key.as_bytes()).map(|n| JsonRef(Repr::Node(n)))
            }
            Repr::Node(_) => None,
        }
    }

    /// A string that is valid Unicode (no lone surrogate).
    pub fn as_str(self) -> Option<&'a str> {
        match self.0 {
            Repr::Value(v) => v.as_str(),
            Repr::Node(Node::String(s)) => std::str::from_utf8(s).ok(),
            Repr::Node(_) => None,
        }
    }

    /// An id as sent, string or number, as bytes that tell any two ids apart: a
    /// string's UTF-8 (WTF-8 when it holds a lone surrogate), a number's text as
    /// serde_json writes it (as sent, when out of range).
    pub fn id_bytes(self) -> Option<Cow<'a, [u8]>> {
        match self.0 {
            Repr::Value(Value::String(s)) => Some(Cow::Borrowed(s.as_bytes())),
            Repr::Value(Value::Number(n)) => Some(Cow::Owned(n.to_string().into_bytes())),
            Repr::Node(Node::String(s)) => Some(Cow::Borrowed(s)),
            Repr::Node(Node::Number(Num::Known(n))) => Some(Cow::Owned(n.to_string().into_bytes())),
            Repr::Node(Node::Number(Num::Raw(text))) => Some(Cow::Borrowed(text.as_bytes())),
            _ => None,
        }
    }

    /// Canonical JSON: object keys sorted, no whitespace, lossless (module docs).
    pub fn canonical(self) -> String {
        match self.0 {
            Repr::Value(v) => crate::canonical::canonical_json(v),
            Repr::Node(n) => {
                let mut out = String::new();
                n.write_canonical(&mut out);
                out
            }
        }
    }
}

/// A value as our reader keeps it: every code unit and digit.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(Num),
    /// WTF-8: UTF-8, with lone surrogates encoded as their three-byte form.
    String(Vec<u8>),
    Array(Vec<Node>),
    /// Keys as WTF-8, sorted by their bytes (code point order); the last duplicate won.
    Object(BTreeMap<Vec<u8>, Node>),
    /// A container nested deeper than [`MAX_DEPTH`], as its text.
    Deep(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Num {
    /// What serde_json reads it as.
    Known(Number),
    /// Out of serde_json's range: the text as sent.
    Raw(String),
}

impl Node {
    fn lossy(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(Num::Known(n)) => Value::Number(n.clone()),
            Node::Number(Num::Raw(text)) | Node::Deep(text) => Value::String(text.clone()),
            Node::String(s) => Value::String(lossy_string(s)),
            Node::Array(items) => Value::Array(items.iter().map(Node::lossy).collect()),
            Node::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (lossy_string(k), v.lossy()))
                    .collect(),
            ),
        }
    }

    fn write_canonical(&self, out: &mut String) {
        match self {
            Node::Null => out.push_str("null"),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Node::Number(Num::Known(n)) => out.push_str(&n.to_string()),
            Node::Number(Num::Raw(text)) | Node::Deep(text) => out.push_str(text),
            Node::String(s) => write_string(s, out),
            Node::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_canonical(out);
                }
                out.push(']');
            }
            Node::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    v.write_canonical(out);
                }
                out.push('}');
            }
        }
    }
}

/// A piece of a WTF-8 string.
enum Piece<'a> {
    Text(&'a str),
    Surrogate(u16),
}

/// Splits WTF-8 into valid text and lone surrogates.
fn pieces(mut bytes: &[u8]) -> impl Iterator<Item = Piece<'_>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let valid = match std::str::from_utf8(bytes) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        if valid > 0 {
            let (text, rest) = bytes.split_at(valid);
            bytes = rest;
            // `valid` ends where UTF-8 validation stopped, so this is valid text.
            return Some(Piece::Text(std::str::from_utf8(text).unwrap_or_default()));
        }
        // Our reader writes nothing invalid but surrogates; a stray byte reads as one
        // replacement rather than a panic.
        let (unit, taken) = match bytes {
            [0xED, b1 @ 0xA0..=0xBF, b2 @ 0x80..=0xBF, ..] => (
                0xD000 | (u16::from(b1 & 0x3F) << 6) | u16::from(b2 & 0x3F),
                3,
            ),
            _ => (0xFFFD, 1),
        };
        bytes = &bytes[taken..];
        Some(Piece::Surrogate(unit))
    })
}

fn lossy_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for piece in pieces(bytes) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Surrogate(_) => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
    out
}

/// A string as serde_json writes it, lone surrogates as `\udxxx`.
fn write_string(bytes: &[u8], out: &mut String) {
    out.push('"');
    for piece in pieces(bytes) {
        match piece {
            Piece::Text(t) => escape_into(t, out),
            Piece::Surrogate(u) => out.push_str(&format!("\\u{u:04x}")),
        }
    }
    out.push('"');
}

/// serde_json's escaping: `"` and `\`, the short forms, other controls as `\u00xx`.
fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

pub mod field;
mod parse;
#[cfg(test)]
mod tests;
