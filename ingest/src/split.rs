//! Splits one signed delivery into events (contract §3, "Types").
//!
//! Reading is lenient: ids and times may be numbers or strings, items may lack
//! `sender` or `timestamp`. Nothing signed is dropped: whatever cannot be read
//! becomes an `unknown`, `invalid` or `unparsed` event carrying the raw input.
//! Each item's `data` is its raw JSON text, so Facebook's escapes survive.

use base64::Engine;
use chrono::{DateTime, Utc};
use pagesync_schema::fbtime::{epoch_millis, from_millis};
use pagesync_schema::{Event, EventId, EventType, NO_PAGE, PageId, Psid, Source, event_id};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Every event of a delivery body, in the order of the body.
pub fn split(body: &[u8], received_at: DateTime<Utc>) -> Vec<Event> {
    let Some(raw) = json_object(body) else {
        return vec![unparsed(body, received_at)];
    };
    let mut out = Vec::new();
    let ctx = Ctx { received_at };
    match serde_json::from_str::<Delivery<'_>>(raw.get()) {
        Ok(delivery) => ctx.delivery(raw, &delivery, &mut out),
        Err(_) => out.push(ctx.unknown(raw, None, NO_PAGE, None)),
    }
    out
}

/// The body as raw JSON when it is one JSON object.
fn json_object(body: &[u8]) -> Option<&RawValue> {
    let raw: &RawValue = serde_json::from_slice(body).ok()?;
    raw.get().starts_with('{').then_some(raw)
}

#[derive(Deserialize)]
struct Delivery<'a> {
    #[serde(default)]
    object: Option<Value>,
    #[serde(borrow, default)]
    entry: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    time: Option<Value>,
    #[serde(borrow, default)]
    messaging: Option<&'a RawValue>,
    #[serde(borrow, default)]
    standby: Option<&'a RawValue>,
    #[serde(borrow, default)]
    changes: Option<&'a RawValue>,
}

/// Which list of an entry an item came from.
#[derive(Clone, Copy)]
enum List {
    Messaging,
    Standby,
    Changes,
}

struct Ctx {
    received_at: DateTime<Utc>,
}

impl Ctx {
    fn delivery(&self, raw: &RawValue, d: &Delivery<'_>, out: &mut Vec<Event>) {
        let entries = d
            .entry
            .and_then(|e| serde_json::from_str::<Vec<&RawValue>>(e.get()).ok());
        let Some(entries) = entries else {
            out.push(self.unknown(raw, None, NO_PAGE, None));
            return;
        };
        let is_page = matches!(&d.object, Some(Value::String(s)) if s == "page");
        for entry in entries {
            if is_page {
                self.page_entry(entry, out);
            } else {
                let page = parse_entry(entry).and_then(|e| lenient_string(e.id.as_ref()));
                out.push(self.unknown(entry, None, page.as_deref().unwrap_or(NO_PAGE), None));
            }
        }
    }

    fn page_entry(&self, raw: &RawValue, out: &mut Vec<Event>) {
        let Some(entry) = parse_entry(raw) else {
            out.push(self.unknown(raw, None, NO_PAGE, None));
            return;
        };
        let page_raw = lenient_string(entry.id.as_ref());
        let page_raw = page_raw.as_deref().unwrap_or(NO_PAGE);
        let page = PageId::parse(page_raw).ok();
        let entry_time = entry.time.as_ref().and_then(epoch_millis);
        let lists = [
            (List::Messaging, entry.messaging),
            (List::Standby, entry.standby),
            (List::Changes, entry.changes),
        ];
        let mut items = Vec::new();
        for (list, present) in lists {
            let Some(present) = present else { continue };
            match serde_json::from_str::<Vec<&RawValue>>(present.get()) {
                Ok(list_items) => items.extend(list_items.into_iter().map(|i| (list, i))),
                Err(_) => {
                    // A list that is not a list: keep the entry whole rather than guess.
                    out.push(self.unknown(raw, page.as_ref(), page_raw, entry_time));
                    return;
                }
            }
        }
        if lists.iter().all(|(_, p)| p.is_none()) {
            out.push(self.unknown(raw, page.as_ref(), page_raw, entry_time));
            return;
        }
        let item_ctx = ItemCtx {
            page: page.as_ref(),
            page_raw,
            entry_time,
        };
        for (list, item) in items {
            out.push(self.item(&item_ctx, list, item));
        }
    }

    fn item(&self, ctx: &ItemCtx<'_>, list: List, raw: &RawValue) -> Event {
        let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
        match list {
            List::Changes => self.change(ctx, raw, &value),
            List::Messaging | List::Standby => {
                let kind = match list {
                    List::Standby => Some(EventType::Standby),
                    _ => messaging_type(&value),
                };
                match kind {
                    Some(kind) => self.messaging(ctx, raw, &value, kind),
                    None => self.unknown(raw, ctx.page, ctx.page_raw, ctx.entry_time),
                }
            }
        }
    }

    fn messaging(&self, ctx: &ItemCtx<'_>, raw: &RawValue, item: &Value, kind: EventType) -> Event {
        let echo = is_echo(item);
        let party = if echo { "recipient" } else { "sender" };
        let psid = lenient_string(item.get(party).and_then(|p| p.get("id")))
            .and_then(|s| Psid::parse(s).ok());
        let time_ms = item
            .get("timestamp")
            .and_then(epoch_millis)
            .or_else(|| watermark(item, kind).and_then(|w| epoch_millis(&Value::from(w))))
            .or(ctx.entry_time);
        let (Some(page), Some(psid)) = (ctx.page, psid) else {
            return self.event(
                EventType::Invalid,
                hashed(EventType::Invalid, ctx.page_raw, item),
                None,
                None,
                time_ms,
                raw,
            );
        };
        let id = match kind {
            EventType::Message | EventType::MessageEcho => {
                lenient_string(item.pointer("/message/mid"))
                    .and_then(|mid| event_id::for_message(&mid))
            }
            EventType::Delivery | EventType::Read => {
                watermark(item, kind).map(|w| event_id::for_receipt(kind, page, &psid, w))
            }
            _ => None,
        }
        .unwrap_or_else(|| hashed(kind, ctx.page_raw, item));
        self.event(kind, id, Some(page.clone()), Some(psid), time_ms, raw)
    }

    fn change(&self, ctx: &ItemCtx<'_>, raw: &RawValue, item: &Value) -> Event {
        let Some(field) = item.get("field").and_then(Value::as_str) else {
            return self.unknown(raw, ctx.page, ctx.page_raw, ctx.entry_time);
        };
        let Some(page) = ctx.page else {
            return self.event(
                EventType::Invalid,
                hashed(EventType::Invalid, ctx.page_raw, item),
                None,
                None,
                ctx.entry_time,
                raw,
            );
        };
        let time_ms = ctx
            .entry_time
            .unwrap_or_else(|| self.received_at.timestamp_millis());
        let value = item.get("value").unwrap_or(&Value::Null);
        let id = event_id::for_page_change(page, field, time_ms, value);
        self.event(
            EventType::PageChange,
            id,
            Some(page.clone()),
            None,
            Some(time_ms),
            raw,
        )
    }

    fn unknown(
        &self,
        raw: &RawValue,
        page: Option<&PageId>,
        page_raw: &str,
        time_ms: Option<i64>,
    ) -> Event {
        let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
        let id = hashed(EventType::Unknown, page_raw, &value);
        self.event(EventType::Unknown, id, page.cloned(), None, time_ms, raw)
    }

    fn event(
        &self,
        event_type: EventType,
        id: EventId,
        page_id: Option<PageId>,
        psid: Option<Psid>,
        time_ms: Option<i64>,
        raw: &RawValue,
    ) -> Event {
        Event {
            id,
            event_type,
            source: Source::Ingest,
            page_id,
            psid,
            time: time_ms.and_then(from_millis).unwrap_or(self.received_at),
            received_at: self.received_at,
            data: raw.to_owned(),
        }
    }
}

struct ItemCtx<'a> {
    page: Option<&'a PageId>,
    page_raw: &'a str,
    entry_time: Option<i64>,
}

fn unparsed(body: &[u8], received_at: DateTime<Utc>) -> Event {
    let data = match std::str::from_utf8(body) {
        Ok(text) => serde_json::json!({"body": text, "encoding": "utf8"}),
        Err(_) => serde_json::json!({
            "body": base64::engine::general_purpose::STANDARD.encode(body),
            "encoding": "base64",
        }),
    };
    Event {
        id: event_id::for_unparsed(body),
        event_type: EventType::Unparsed,
        source: Source::Ingest,
        page_id: None,
        psid: None,
        time: received_at,
        received_at,
        data: serde_json::value::to_raw_value(&data).expect("a JSON object serialises"),
    }
}

/// An entry's known keys, when the entry is a JSON object without duplicate keys.
/// (serde would read a struct from an array positionally, hence the object check.)
fn parse_entry(raw: &RawValue) -> Option<Entry<'_>> {
    if !raw.get().starts_with('{') {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// The type a `messaging[]` item carries, by the first known key present.
fn messaging_type(item: &Value) -> Option<EventType> {
    let obj = item.as_object()?;
    let (_, kind) = EventType::MESSAGING_KEYS
        .iter()
        .find(|(key, _)| obj.contains_key(*key))?;
    Some(if *kind == EventType::Message && is_echo(item) {
        EventType::MessageEcho
    } else {
        *kind
    })
}

fn is_echo(item: &Value) -> bool {
    match item.pointer("/message/is_echo") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// The receipt's watermark as sent (an integer, or a string of one).
fn watermark(item: &Value, kind: EventType) -> Option<i64> {
    let key = match kind {
        EventType::Delivery => "delivery",
        EventType::Read => "read",
        _ => return None,
    };
    match item.get(key)?.get("watermark")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string, or a number written as a string (Facebook sends ids both ways).
fn lenient_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn hashed(kind: EventType, page_raw: &str, item: &Value) -> EventId {
    event_id::hashed(kind, page_raw, item)
}

#[cfg(test)]
mod tests;
