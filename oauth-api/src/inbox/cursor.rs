//! Keyset cursors (docs/inbox.md, "Cursors"): opaque to API users, they carry
//! the sort key of the last row of a page, never an offset, so a walk neither
//! repeats nor skips rows that did not change meanwhile.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pagesync_schema::{PageId, Psid};

/// Why a cursor was refused (answered 400 `invalid_cursor`).
#[derive(Debug, thiserror::Error)]
#[error("the cursor is not one this API gave out")]
pub struct InvalidCursor;

/// After this conversation in the list's order (newest activity first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub last_message_ms: i64,
    /// A page id and a psid: safe tokens (checked when parsed from a client).
    pub page: String,
    pub psid: String,
}

/// After this message in a conversation's order (oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCursor {
    pub timestamp_ms: i64,
    pub mid: String,
}

impl ListCursor {
    pub fn encode(&self) -> String {
        encode(&format!(
            "c:{}:{}:{}",
            self.last_message_ms, self.page, self.psid
        ))
    }

    pub fn parse(s: &str) -> Result<Self, InvalidCursor> {
        let text = decode(s)?;
        let rest = text.strip_prefix("c:").ok_or(InvalidCursor)?;
        // Page ids and psids are safe tokens: they never hold a colon.
        let mut parts = rest.splitn(3, ':');
        let (Some(ms), Some(page), Some(psid)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidCursor);
        };
        Ok(Self {
            last_message_ms: ms.parse().map_err(|_| InvalidCursor)?,
            page: PageId::parse(page).map_err(|_| InvalidCursor)?.to_string(),
            psid: Psid::parse(psid).map_err(|_| InvalidCursor)?.to_string(),
        })
    }
}

impl MessageCursor {
    pub fn encode(&self) -> String {
        encode(&format!("m:{}:{}", self.timestamp_ms, self.mid))
    }

    pub fn parse(s: &str) -> Result<Self, InvalidCursor> {
        let text = decode(s)?;
        let rest = text.strip_prefix("m:").ok_or(InvalidCursor)?;
        // The time has no colon; the mid (Facebook's string) may.
        let (ms, mid) = rest.split_once(':').ok_or(InvalidCursor)?;
        if mid.is_empty() {
            return Err(InvalidCursor);
        }
        Ok(Self {
            timestamp_ms: ms.parse().map_err(|_| InvalidCursor)?,
            mid: mid.to_owned(),
        })
    }
}

fn encode(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn decode(s: &str) -> Result<String, InvalidCursor> {
    // Far longer than any cursor this API makes: refused before decoding.
    if s.len() > 1024 {
        return Err(InvalidCursor);
    }
    let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| InvalidCursor)?;
    String::from_utf8(bytes).map_err(|_| InvalidCursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = ListCursor {
            last_message_ms: 1_700_000_000_123,
            page: "101".into(),
            psid: "u-1_x".into(),
        };
        assert_eq!(ListCursor::parse(&c.encode()).unwrap(), c);
        let m = MessageCursor {
            timestamp_ms: 5,
            mid: "m_a:b$c".into(),
        };
        assert_eq!(MessageCursor::parse(&m.encode()).unwrap(), m);
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "!!",
            "bm90IGEgY3Vyc29y",
            &encode("c:x:101:u1"),
            &encode("c:1:1/1:u"),
        ] {
            assert!(ListCursor::parse(bad).is_err(), "{bad}");
        }
        let list = ListCursor {
            last_message_ms: 1,
            page: "1".into(),
            psid: "2".into(),
        };
        assert!(MessageCursor::parse(&list.encode()).is_err());
        assert!(MessageCursor::parse(&encode("m:1:")).is_err());
        assert!(ListCursor::parse(&"A".repeat(2000)).is_err());
    }
}
