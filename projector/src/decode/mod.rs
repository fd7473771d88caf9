//! What an event means for the read model: a pure function of the envelope, so
//! bad data is found before any SQL runs and becomes a dead letter.

mod conversation;

use pagesync_schema::tokens::{is_token_key, strip_tokens};
use pagesync_schema::{Event, EventType, PageId, Psid, Source, lenient};
use serde_json::Value;

/// Why an event cannot be applied. It is recorded as a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Poison(pub String);

/// The effect of one event on the read model.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Kept in the stream, not projected (`unknown`, `invalid`, `unparsed`).
    Nothing,
    Conversation {
        page: PageId,
        psid: Psid,
        timestamp_ms: i64,
        /// Part of the conversation file.
        in_file: bool,
        detail: Detail,
    },
    PageSnapshot {
        page: PageId,
        data: Value,
    },
    PageChange {
        page: PageId,
        field: String,
        value: Value,
    },
}

/// What a conversation event adds beyond its place in the conversation.
#[derive(Debug, Clone)]
pub enum Detail {
    Message(MessageRow),
    Edit {
        mid: Option<String>,
        text: Option<String>,
        num_edit: Option<i32>,
    },
    Reaction {
        mid: Option<String>,
        action: Option<String>,
        reaction: Option<String>,
        emoji: Option<String>,
        /// The page reacted (its id is the sender), not the customer.
        by_page: bool,
    },
    Delivery {
        watermark: i64,
    },
    Read {
        watermark: i64,
    },
    Status {
        open: bool,
        at_ms: i64,
    },
    /// `customer_profile`: the customer's name as Facebook gives it.
    Profile {
        name: String,
    },
    None,
}

#[derive(Debug, Clone)]
pub struct MessageRow {
    pub mid: String,
    pub incoming: bool,
    pub text: Option<String>,
    pub attachments: Option<Value>,
    /// An echo's `app_id` (number or string on the wire), as text.
    pub app_id: Option<String>,
}

/// Where a copy came from, as the inbox shows it.
pub fn origin(source: Source) -> &'static str {
    match source {
        Source::Ingest => "webhook",
        Source::Poller => "poll",
        Source::OauthApi => "send",
    }
}

/// Reads an event's effect. Facebook's shapes are read leniently; only what the
/// model cannot do without is required. `data` is read with [`lenient::read_value`],
/// so what serde_json refuses is never poison: a lone surrogate reads as U+FFFD, a
/// number out of range as the string of its digits (the stored `data` stays verbatim).
pub fn decode(event: &Event) -> Result<Effect, Poison> {
    use EventType as T;
    if matches!(event.event_type, T::Unknown | T::Invalid | T::Unparsed) {
        // Kept in the stream, never projected: nothing in them needs reading.
        return Ok(Effect::Nothing);
    }
    let data = lenient::read_value(event.data.get())
        .map_err(|e| Poison(format!("data is not JSON: {e}")))?;
    match event.event_type {
        T::PageSnapshot => page_snapshot(event, data),
        T::PageChange => page_change(event, &data),
        t if t.is_messaging() => conversation::effect(t, event, &data),
        t => Err(Poison(format!("event type {t} is not projected"))),
    }
}

/// A snapshot of the page, tokens stripped at every depth.
fn page_snapshot(event: &Event, data: Value) -> Result<Effect, Poison> {
    let page = page_of(event)?;
    let mut data @ Value::Object(_) = data else {
        return Err(Poison("page_snapshot data is not an object".into()));
    };
    strip_tokens(&mut data);
    Ok(Effect::PageSnapshot {
        page,
        data: sanitize(data),
    })
}

/// One field of the page changed; a token field is never stored.
fn page_change(event: &Event, data: &Value) -> Result<Effect, Poison> {
    let page = page_of(event)?;
    let field = data
        .get("field")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty())
        .ok_or_else(|| Poison("page_change data has no field name".into()))?;
    if is_token_key(field) {
        return Ok(Effect::Nothing);
    }
    let mut value = data.get("value").cloned().unwrap_or(Value::Null);
    strip_tokens(&mut value);
    Ok(Effect::PageChange {
        page,
        field: strip_nul(field),
        value: sanitize(value),
    })
}

pub(crate) fn page_of(event: &Event) -> Result<PageId, Poison> {
    event
        .page_id
        .clone()
        .ok_or_else(|| Poison(format!("{} event has no page id", event.event_type)))
}

/// Postgres text and jsonb cannot hold NUL characters; they carry no meaning here.
pub fn strip_nul(s: &str) -> String {
    s.replace('\0', "")
}

pub(crate) fn sanitize(v: Value) -> Value {
    match v {
        Value::String(s) if s.contains('\0') => Value::String(strip_nul(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(sanitize).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (strip_nul(&k), sanitize(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests;
