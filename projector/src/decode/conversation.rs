//! What a messaging event adds to its conversation.

use pagesync_schema::fbtime::epoch_millis;
use pagesync_schema::{Event, EventType, Platform};
use serde_json::Value;

use super::{Detail, Effect, MessageRow, Poison, page_of, sanitize, strip_nul};

/// A messaging event's place in its conversation and what it adds there.
pub(super) fn effect(t: EventType, event: &Event, data: &Value) -> Result<Effect, Poison> {
    let page = page_of(event)?;
    let psid = event
        .psid
        .clone()
        .ok_or_else(|| Poison(format!("{t} event has no psid")))?;
    if !data.is_object() {
        return Err(Poison(format!("{t} data is not an object")));
    }
    let event_ms = event.time.timestamp_millis();
    let timestamp_ms = data
        .get("timestamp")
        .and_then(epoch_millis)
        .unwrap_or(event_ms);
    let (in_file, detail) = detail(t, data, event, event_ms)?;
    Ok(Effect::Conversation {
        page,
        psid,
        timestamp_ms,
        in_file,
        detail,
    })
}

/// Whether the item is part of the conversation file, and its detail.
fn detail(
    t: EventType,
    data: &Value,
    event: &Event,
    event_ms: i64,
) -> Result<(bool, Detail), Poison> {
    use EventType as T;
    let detail = match t {
        // An Instagram unsend is kept in the file under its own id; the message it
        // names stays (docs/projection.md, "Instagram").
        T::Message if is_unsend(event, data) => Detail::None,
        T::Message | T::MessageEcho => Detail::Message(message_row(t, data, event)?),
        T::Standby => match data.get("message") {
            Some(_) => Detail::Message(message_row(t, data, event)?),
            None => return Ok((false, Detail::None)),
        },
        T::MessageEdit => edit(data)?,
        T::Reaction => reaction(data, event)?,
        T::Delivery => Detail::Delivery {
            watermark: watermark(data, "delivery")?,
        },
        T::Read => Detail::Read {
            watermark: read_watermark(data, event, event_ms)?,
        },
        T::ConversationStatus => status(data, event_ms)?,
        T::CustomerProfile => profile(data)?,
        _ => Detail::None,
    };
    let in_file = !matches!(
        t,
        T::Delivery | T::Read | T::ConversationStatus | T::CustomerProfile
    );
    Ok((in_file, detail))
}

/// A string field, NULs stripped.
fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(strip_nul)
}

fn edit(data: &Value) -> Result<Detail, Poison> {
    let edit = object(data, "message_edit")?;
    Ok(Detail::Edit {
        mid: text(edit.get("mid")),
        text: text(edit.get("text")),
        num_edit: edit
            .get("num_edit")
            .and_then(lenient_i64)
            .and_then(|n| i32::try_from(n).ok()),
    })
}

fn reaction(data: &Value, event: &Event) -> Result<Detail, Poison> {
    let r = object(data, "reaction")?;
    let sender = data.pointer("/sender/id").and_then(lenient_id);
    Ok(Detail::Reaction {
        mid: text(r.get("mid")),
        action: text(r.get("action")),
        reaction: text(r.get("reaction")),
        emoji: text(r.get("emoji")),
        by_page: event
            .page_id
            .as_ref()
            .is_some_and(|p| sender.as_deref() == Some(p.as_str())),
    })
}

fn status(data: &Value, event_ms: i64) -> Result<Detail, Poison> {
    let open = match data.get("status").and_then(Value::as_str) {
        Some("open") => true,
        Some("closed") => false,
        _ => {
            return Err(Poison(
                "conversation_status needs status open or closed".into(),
            ));
        }
    };
    let at_ms = data.get("at").and_then(epoch_millis).unwrap_or(event_ms);
    Ok(Detail::Status { open, at_ms })
}

fn profile(data: &Value) -> Result<Detail, Poison> {
    let name = text(data.get("name"))
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Poison("customer_profile needs a non-empty name".into()))?;
    Ok(Detail::Profile { name })
}

fn message_row(t: EventType, data: &Value, event: &Event) -> Result<MessageRow, Poison> {
    let message = object(data, "message")?;
    let echo = message
        .get("is_echo")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let incoming = match t {
        EventType::MessageEcho => false,
        EventType::Message => true,
        _ => !echo,
    };
    let mid = message
        .get("mid")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(strip_nul)
        .unwrap_or_else(|| event.id.as_str().to_owned());
    Ok(MessageRow {
        mid,
        incoming,
        text: message.get("text").and_then(Value::as_str).map(strip_nul),
        attachments: message.get("attachments").cloned().map(sanitize),
        app_id: (!incoming)
            .then(|| message.get("app_id").and_then(lenient_id))
            .flatten(),
    })
}

/// An id Facebook sends as a number or a string.
fn lenient_id(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(strip_nul(s)),
        _ => None,
    }
}

fn object<'a>(data: &'a Value, key: &str) -> Result<&'a serde_json::Map<String, Value>, Poison> {
    data.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| Poison(format!("data.{key} is missing or not an object")))
}

fn watermark(data: &Value, key: &str) -> Result<i64, Poison> {
    object(data, key)?
        .get("watermark")
        .and_then(epoch_millis)
        .ok_or_else(|| Poison(format!("data.{key}.watermark is missing or not a time")))
}

/// Instagram's seen receipt names a `mid`, not a watermark: everything up to the
/// moment the customer saw it (the item's time) is read.
fn read_watermark(data: &Value, event: &Event, event_ms: i64) -> Result<i64, Poison> {
    match watermark(data, "read") {
        Err(_) if event.platform == Platform::Instagram => Ok(data
            .get("timestamp")
            .and_then(epoch_millis)
            .unwrap_or(event_ms)),
        read => read,
    }
}

fn is_unsend(event: &Event, data: &Value) -> bool {
    event.platform == Platform::Instagram
        && match data.pointer("/message/is_deleted") {
            Some(Value::Bool(b)) => *b,
            // As ingest reads it, so the two agree on which id the item has.
            Some(Value::String(s)) => s == "true",
            _ => false,
        }
}

fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
