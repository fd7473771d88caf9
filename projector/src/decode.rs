//! What an event means for the read model: a pure function of the envelope, so
//! bad data is found before any SQL runs and becomes a dead letter.

use pagesync_schema::fbtime::epoch_millis;
use pagesync_schema::tokens::{is_token_key, strip_tokens};
use pagesync_schema::{Event, EventType, PageId, Platform, Psid, Source, lenient};
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
    let event_ms = event.time.timestamp_millis();
    match event.event_type {
        T::PageSnapshot => {
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
        T::PageChange => {
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
        t => {
            if !t.is_messaging() {
                return Err(Poison(format!("event type {t} is not projected")));
            }
            let page = page_of(event)?;
            let psid = event
                .psid
                .clone()
                .ok_or_else(|| Poison(format!("{t} event has no psid")))?;
            if !data.is_object() {
                return Err(Poison(format!("{t} data is not an object")));
            }
            let timestamp_ms = data
                .get("timestamp")
                .and_then(epoch_millis)
                .unwrap_or(event_ms);
            let (in_file, detail) = conversation_detail(t, &data, event, event_ms)?;
            Ok(Effect::Conversation {
                page,
                psid,
                timestamp_ms,
                in_file,
                detail,
            })
        }
    }
}

fn conversation_detail(
    t: EventType,
    data: &Value,
    event: &Event,
    event_ms: i64,
) -> Result<(bool, Detail), Poison> {
    use EventType as T;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(strip_nul);
    let detail = match t {
        // An Instagram unsend is kept in the file under its own id; the message it
        // names stays (docs/projection.md, "Instagram").
        T::Message if is_unsend(event, data) => Detail::None,
        T::Message | T::MessageEcho => Detail::Message(message_row(t, data, event)?),
        T::Standby => match data.get("message") {
            Some(_) => Detail::Message(message_row(t, data, event)?),
            None => return Ok((false, Detail::None)),
        },
        T::MessageEdit => {
            let edit = object(data, "message_edit")?;
            Detail::Edit {
                mid: s(edit.get("mid")),
                text: s(edit.get("text")),
                num_edit: edit
                    .get("num_edit")
                    .and_then(lenient_i64)
                    .and_then(|n| i32::try_from(n).ok()),
            }
        }
        T::Reaction => {
            let r = object(data, "reaction")?;
            let sender = data.pointer("/sender/id").and_then(lenient_id);
            Detail::Reaction {
                mid: s(r.get("mid")),
                action: s(r.get("action")),
                reaction: s(r.get("reaction")),
                emoji: s(r.get("emoji")),
                by_page: event
                    .page_id
                    .as_ref()
                    .is_some_and(|p| sender.as_deref() == Some(p.as_str())),
            }
        }
        T::Delivery => Detail::Delivery {
            watermark: watermark(data, "delivery")?,
        },
        T::Read => Detail::Read {
            watermark: read_watermark(data, event, event_ms)?,
        },
        T::ConversationStatus => {
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
            Detail::Status { open, at_ms }
        }
        T::CustomerProfile => {
            let name = s(data.get("name"))
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Poison("customer_profile needs a non-empty name".into()))?;
            Detail::Profile { name }
        }
        _ => Detail::None,
    };
    let in_file = !matches!(
        t,
        T::Delivery | T::Read | T::ConversationStatus | T::CustomerProfile
    );
    Ok((in_file, detail))
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

fn page_of(event: &Event) -> Result<PageId, Poison> {
    event
        .page_id
        .clone()
        .ok_or_else(|| Poison(format!("{} event has no page id", event.event_type)))
}

/// Postgres text and jsonb cannot hold NUL characters; they carry no meaning here.
pub fn strip_nul(s: &str) -> String {
    s.replace('\0', "")
}

fn sanitize(v: Value) -> Value {
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
mod tests {
    use super::*;
    use serde_json::json;

    fn event(t: EventType, data: Value) -> Event {
        Event {
            id: pagesync_schema::EventId::parse("e1").unwrap(),
            event_type: t,
            source: Source::Ingest,
            page_id: Some(PageId::parse("p1").unwrap()),
            psid: t.is_messaging().then(|| Psid::parse("u1").unwrap()),
            platform: pagesync_schema::Platform::Messenger,
            time: pagesync_schema::fbtime::from_millis(1_700_000_000_000).unwrap(),
            received_at: pagesync_schema::fbtime::from_millis(1_700_000_000_000).unwrap(),
            data: serde_json::value::to_raw_value(&data).unwrap(),
        }
    }

    #[test]
    fn a_message_reads_mid_text_and_timestamp_leniently() {
        let e = event(
            EventType::Message,
            json!({"timestamp": "1697051234567", "message": {"mid": "m1", "text": "hi\u{0}"}}),
        );
        let Effect::Conversation {
            timestamp_ms,
            in_file,
            detail: Detail::Message(m),
            ..
        } = decode(&e).unwrap()
        else {
            panic!("not a message")
        };
        assert_eq!(timestamp_ms, 1697051234567);
        assert!(in_file && m.incoming);
        assert_eq!(m.mid, "m1");
        assert_eq!(m.text.as_deref(), Some("hi"));
    }

    #[test]
    fn receipts_and_statuses_stay_out_of_files() {
        let d = event(EventType::Delivery, json!({"delivery": {"watermark": 5}}));
        assert!(matches!(
            decode(&d).unwrap(),
            Effect::Conversation {
                in_file: false,
                detail: Detail::Delivery { watermark: 5000 },
                ..
            }
        ));
        let s = event(
            EventType::ConversationStatus,
            json!({"psid": "u1", "status": "closed", "at": 1_700_000_000_001i64}),
        );
        assert!(matches!(
            decode(&s).unwrap(),
            Effect::Conversation {
                in_file: false,
                detail: Detail::Status { open: false, .. },
                ..
            }
        ));
    }

    #[test]
    fn standby_without_a_message_is_stored_but_not_in_files() {
        let e = event(EventType::Standby, json!({"postback": {"title": "x"}}));
        assert!(matches!(
            decode(&e).unwrap(),
            Effect::Conversation { in_file: false, .. }
        ));
        let e = event(
            EventType::Standby,
            json!({"message": {"mid": "m9", "is_echo": true}}),
        );
        let Effect::Conversation {
            in_file: true,
            detail: Detail::Message(m),
            ..
        } = decode(&e).unwrap()
        else {
            panic!()
        };
        assert!(!m.incoming);
    }

    #[test]
    fn an_echo_keeps_its_app_id_and_a_reaction_its_side() {
        let echo = event(
            EventType::MessageEcho,
            json!({"message": {"mid": "m1", "is_echo": true, "app_id": 1517}}),
        );
        let Effect::Conversation {
            detail: Detail::Message(m),
            ..
        } = decode(&echo).unwrap()
        else {
            panic!("not a message")
        };
        assert_eq!(m.app_id.as_deref(), Some("1517"));
        let by_page = event(
            EventType::Reaction,
            json!({"sender": {"id": "p1"}, "reaction": {"mid": "m1", "action": "react"}}),
        );
        let by_customer = event(
            EventType::Reaction,
            json!({"sender": {"id": "u1"}, "reaction": {"mid": "m1", "action": "react"}}),
        );
        for (e, page) in [(by_page, true), (by_customer, false)] {
            let Effect::Conversation {
                detail: Detail::Reaction { by_page, .. },
                ..
            } = decode(&e).unwrap()
            else {
                panic!("not a reaction")
            };
            assert_eq!(by_page, page);
        }
    }

    #[test]
    fn a_customer_profile_names_the_customer_outside_the_file() {
        let e = event(
            EventType::CustomerProfile,
            json!({"psid": "u1", "name": " Ada Lovelace "}),
        );
        let Effect::Conversation {
            in_file: false,
            detail: Detail::Profile { name },
            ..
        } = decode(&e).unwrap()
        else {
            panic!("not a profile")
        };
        assert_eq!(name, "Ada Lovelace");
        let nameless = event(
            EventType::CustomerProfile,
            json!({"psid": "u1", "name": ""}),
        );
        assert!(decode(&nameless).is_err());
    }

    #[test]
    fn bad_data_is_poison() {
        assert!(decode(&event(EventType::Message, json!({"message": "x"}))).is_err());
        assert!(decode(&event(EventType::Read, json!({"read": {}}))).is_err());
        assert!(
            decode(&event(
                EventType::ConversationStatus,
                json!({"status": "maybe"})
            ))
            .is_err()
        );
        assert!(decode(&event(EventType::PageChange, json!({"value": 1}))).is_err());
        let mut no_psid = event(EventType::Message, json!({"message": {"mid": "m"}}));
        no_psid.psid = None;
        assert!(decode(&no_psid).is_err());
    }

    #[test]
    fn an_instagram_seen_receipt_reads_up_to_its_time_and_an_unsend_is_no_message() {
        let mut seen = event(
            EventType::Read,
            json!({"timestamp": 1_569_262_492_349i64, "read": {"mid": "m1"}}),
        );
        assert!(decode(&seen).is_err(), "a Messenger read needs a watermark");
        seen.platform = Platform::Instagram;
        assert!(matches!(
            decode(&seen).unwrap(),
            Effect::Conversation {
                in_file: false,
                detail: Detail::Read {
                    watermark: 1_569_262_492_349
                },
                ..
            }
        ));
        let mut unsend = event(
            EventType::Message,
            json!({"message": {"mid": "m1", "is_deleted": true}}),
        );
        unsend.platform = Platform::Instagram;
        assert!(matches!(
            decode(&unsend).unwrap(),
            Effect::Conversation {
                in_file: true,
                detail: Detail::None,
                ..
            }
        ));
    }

    #[test]
    fn snapshots_and_changes_never_keep_a_token_at_any_depth() {
        let e = event(
            EventType::PageSnapshot,
            json!({"id": "p1", "access_token": "secret1", "page": {"id": "p1", "access_token": "secret2"}}),
        );
        let Effect::PageSnapshot { data, .. } = decode(&e).unwrap() else {
            panic!()
        };
        assert_eq!(data, json!({"id": "p1", "page": {"id": "p1"}}));
        let change = event(
            EventType::PageChange,
            json!({"field": "page", "value": {"name": "N", "page_access_token": "secret3"}}),
        );
        let Effect::PageChange { value, .. } = decode(&change).unwrap() else {
            panic!()
        };
        assert_eq!(value, json!({"name": "N"}));
        let token_field = event(
            EventType::PageChange,
            json!({"field": "page_access_token", "value": "secret4"}),
        );
        assert!(matches!(decode(&token_field).unwrap(), Effect::Nothing));
    }

    fn raw_event(t: EventType, data: &str) -> Event {
        let mut e = event(t, json!({}));
        e.data = serde_json::value::RawValue::from_string(data.to_owned()).unwrap();
        e
    }

    #[test]
    fn data_serde_json_refuses_is_read_leniently_not_poison() {
        let digits = "9".repeat(400);
        let e = raw_event(
            EventType::Message,
            &format!(
                r#"{{"timestamp":1e400,"message":{{"mid":"m1","text":"hello \ud83d","n":{digits},"attachments":[{{"t":"\udc00","n":-1e400}}]}}}}"#
            ),
        );
        let Effect::Conversation {
            timestamp_ms,
            detail: Detail::Message(m),
            ..
        } = decode(&e).unwrap()
        else {
            panic!("not a message")
        };
        assert_eq!(
            timestamp_ms, 1_700_000_000_000,
            "an unreadable timestamp is the event's time"
        );
        assert_eq!(m.text.as_deref(), Some("hello \u{fffd}"));
        assert_eq!(
            m.attachments,
            Some(json!([{"t": "\u{fffd}", "n": "-1e400"}]))
        );
        for t in [EventType::Unknown, EventType::Invalid] {
            assert!(matches!(
                decode(&raw_event(t, r#"{"a":"\ud800"}"#)).unwrap(),
                Effect::Nothing
            ));
        }
    }
}
