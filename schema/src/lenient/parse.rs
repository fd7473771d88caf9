//! The reader behind [`super::Lenient`] for text serde_json refuses: RFC 8259,
//! strings kept as WTF-8, numbers as serde_json reads them or as their text.

use std::collections::BTreeMap;

use serde_json::Number;
use serde_json::value::RawValue;

use super::{MAX_DEPTH, Node, Num, SyntaxError};

/// A recursive-descent reader of RFC 8259 JSON that keeps what serde_json refuses.
pub(super) struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    pub(super) fn document(mut self) -> Result<Node, SyntaxError> {
        let node = self.value(0)?;
        self.whitespace();
        if self.pos == self.bytes.len() {
            Ok(node)
        } else {
            Err(self.error())
        }
    }

    fn error(&self) -> SyntaxError {
        SyntaxError { at: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Result<(), SyntaxError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn literal(&mut self, word: &str, node: Node) -> Result<Node, SyntaxError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(node)
        } else {
            Err(self.error())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        self.whitespace();
        match self.peek().ok_or_else(|| self.error())? {
            b'[' | b'{' if depth >= MAX_DEPTH => self.deep(),
            b'[' => self.array(depth + 1),
            b'{' => self.object(depth + 1),
            b'"' => self.string().map(Node::String),
            b'n' => self.literal("null", Node::Null),
            b't' => self.literal("true", Node::Bool(true)),
            b'f' => self.literal("false", Node::Bool(false)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.error()),
        }
    }

    /// A container too deep to read as a tree: checked by serde_json's raw-value
    /// reader (which does not recurse) and kept as text.
    fn deep(&mut self) -> Result<Node, SyntaxError> {
        let rest = &self.text[self.pos..];
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
        match stream.next() {
            Some(Ok(raw)) => {
                self.pos += stream.byte_offset();
                Ok(Node::Deep(raw.get().to_owned()))
            }
            _ => Err(self.error()),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        self.whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Node::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Node::Array(items));
                }
                _ => return Err(self.error()),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        self.eat(b'{')?;
        let mut members = BTreeMap::new();
        self.whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Node::Object(members));
        }
        loop {
            self.whitespace();
            let key = self.string()?;
            self.whitespace();
            self.eat(b':')?;
            members.insert(key, self.value(depth)?);
            self.whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Node::Object(members));
                }
                _ => return Err(self.error()),
            }
        }
    }

    fn number(&mut self) -> Result<Node, SyntaxError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.required_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.required_digits()?;
        }
        let text = &self.text[start..self.pos];
        Ok(Node::Number(match serde_json::from_str::<Number>(text) {
            Ok(n) => Num::Known(n),
            Err(_) => Num::Raw(text.to_owned()),
        }))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self) -> Result<(), SyntaxError> {
        let start = self.pos;
        self.digits();
        if self.pos == start {
            Err(self.error())
        } else {
            Ok(())
        }
    }

    /// A string's content as WTF-8.
    fn string(&mut self) -> Result<Vec<u8>, SyntaxError> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let b = self.peek().ok_or_else(|| self.error())?;
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                0x00..=0x1F => return Err(self.error()),
                _ => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), SyntaxError> {
        let b = self.peek().ok_or_else(|| self.error())?;
        self.pos += 1;
        let simple = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0C,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return self.unicode_escape(out),
            _ => return Err(self.error()),
        };
        out.push(simple);
        Ok(())
    }

    /// `\uXXXX`, just read up to the `u`: a character, a surrogate pair, or a lone surrogate.
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> Result<(), SyntaxError> {
        let unit = self.hex4()?;
        let low = match unit {
            0xD800..=0xDBFF => self.low_surrogate_after(),
            _ => None,
        };
        let code = match (unit, low) {
            (_, Some(low)) => {
                0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
            }
            (0xD800..=0xDFFF, None) => {
                push_surrogate(unit, out);
                return Ok(());
            }
            _ => u32::from(unit),
        };
        let c = char::from_u32(code).ok_or_else(|| self.error())?;
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }

    /// Consumes a `\uXXXX` low surrogate that follows, if one does.
    fn low_surrogate_after(&mut self) -> Option<u16> {
        if !self.bytes[self.pos..].starts_with(b"\\u") {
            return None;
        }
        let saved = self.pos;
        self.pos += 2;
        match self.hex4() {
            Ok(low @ 0xDC00..=0xDFFF) => Some(low),
            _ => {
                self.pos = saved;
                None
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, SyntaxError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error())?;
        let unit = u16::from_str_radix(digits, 16).map_err(|_| self.error())?;
        self.pos += 4;
        Ok(unit)
    }
}

/// Appends a lone surrogate in its three-byte (WTF-8) form.
fn push_surrogate(unit: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        0xED,
        0x80 | ((unit >> 6) & 0x3F) as u8,
        0x80 | (unit & 0x3F) as u8,
    ]);
}
