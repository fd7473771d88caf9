//! The inbox's filters, parsed at the edge: what `GET /api/conversations` and the
//! messages route accept, as types (docs/inbox.md, "Listing conversations").

use pagesync_schema::{PageId, Platform};
use serde::Deserialize;
use utoipa::IntoParams;

use super::cursor::{ListCursor, MessageCursor};
use crate::error::ApiError;

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// Most rows per page.
pub const MAX_LIMIT: i64 = 100;
/// Longest `q` accepted (characters).
const MAX_Q_CHARS: usize = 200;

/// The list's query string as received; [`ListQuery::parse`] makes it a type.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawListQuery {
    /// Only this page's (or Instagram account's) conversations.
    pub page_id: Option<String>,
    /// `open` or `closed`.
    pub status: Option<String>,
    /// `messenger` or `instagram`.
    pub platform: Option<String>,
    /// `true`: only conversations with unread customer messages.
    pub unread: Option<String>,
    /// Case-insensitive substring of the customer's name or of a message's text.
    pub q: Option<String>,
    /// Rows per page, 1 to 100 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The messages route's query string as received.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawPageQuery {
    /// Rows per page, 1 to 100 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// A `q` as a `LIKE` pattern: its `%`, `_` and `\` match themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search(String);

impl Search {
    pub fn pattern(&self) -> &str {
        &self.0
    }

    fn parse(q: &str) -> Result<Option<Self>, ApiError> {
        let q = q.trim();
        if q.is_empty() {
            return Ok(None);
        }
        if q.chars().count() > MAX_Q_CHARS {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("q is longer than {MAX_Q_CHARS} characters"),
            ));
        }
        let mut escaped = String::with_capacity(q.len() + 2);
        escaped.push('%');
        for ch in q.chars() {
            if matches!(ch, '%' | '_' | '\\') {
                escaped.push('\\');
            }
            escaped.push(ch);
        }
        escaped.push('%');
        Ok(Some(Self(escaped)))
    }
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub page: Option<PageId>,
    pub status: Option<Status>,
    pub platform: Option<Platform>,
    pub unread_only: bool,
    pub search: Option<Search>,
    pub limit: i64,
    pub after: Option<ListCursor>,
}

impl ListQuery {
    pub fn parse(raw: RawListQuery) -> Result<Self, ApiError> {
        let bad = |message: String| ApiError::bad_request("invalid_query", message);
        let page = raw
            .page_id
            .map(|p| PageId::parse(p).map_err(|e| bad(format!("page_id: {e}"))))
            .transpose()?;
        let status = match raw.status.as_deref() {
            None => None,
            Some("open") => Some(Status::Open),
            Some("closed") => Some(Status::Closed),
            Some(_) => return Err(bad("status must be open or closed".into())),
        };
        let platform = raw
            .platform
            .map(|p| p.parse::<Platform>().map_err(|e| bad(e.to_string())))
            .transpose()?;
        let unread_only = match raw.unread.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(bad("unread must be true or false".into())),
        };
        let search = raw.q.as_deref().map(Search::parse).transpose()?.flatten();
        let after = raw
            .cursor
            .map(|c| ListCursor::parse(&c).map_err(invalid_cursor))
            .transpose()?;
        Ok(Self {
            page,
            status,
            platform,
            unread_only,
            search,
            limit: limit(raw.limit.as_deref())?,
            after,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PageQuery {
    pub limit: i64,
    pub after: Option<MessageCursor>,
}

impl PageQuery {
    pub fn parse(raw: RawPageQuery) -> Result<Self, ApiError> {
        Ok(Self {
            limit: limit(raw.limit.as_deref())?,
            after: raw
                .cursor
                .map(|c| MessageCursor::parse(&c).map_err(invalid_cursor))
                .transpose()?,
        })
    }
}

fn invalid_cursor(e: super::cursor::InvalidCursor) -> ApiError {
    ApiError::bad_request("invalid_cursor", e.to_string())
}

fn limit(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(f: impl FnOnce(&mut RawListQuery)) -> Result<ListQuery, ApiError> {
        let mut raw = RawListQuery::default();
        f(&mut raw);
        ListQuery::parse(raw)
    }

    #[test]
    fn defaults_and_bounds_of_limit() {
        assert_eq!(parse(|_| {}).unwrap().limit, 50);
        assert_eq!(parse(|r| r.limit = Some("100".into())).unwrap().limit, 100);
        for bad in ["0", "101", "-1", "ten"] {
            assert!(parse(|r| r.limit = Some(bad.into())).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_are_parsed_or_refused() {
        let q = parse(|r| {
            r.status = Some("closed".into());
            r.platform = Some("instagram".into());
            r.unread = Some("true".into());
            r.q = Some(" 50%_off ".into());
        })
        .unwrap();
        assert_eq!(q.status, Some(Status::Closed));
        assert_eq!(q.platform, Some(Platform::Instagram));
        assert!(q.unread_only);
        assert_eq!(q.search.unwrap().pattern(), r"%50\%\_off%");
        assert!(parse(|r| r.q = Some("  ".into())).unwrap().search.is_none());
        assert!(parse(|r| r.status = Some("shut".into())).is_err());
        assert!(parse(|r| r.platform = Some("sms".into())).is_err());
        assert!(parse(|r| r.unread = Some("yes".into())).is_err());
        assert!(parse(|r| r.page_id = Some("../x".into())).is_err());
        assert!(parse(|r| r.cursor = Some("nope".into())).is_err());
        assert!(parse(|r| r.q = Some("x".repeat(201))).is_err());
    }
}
