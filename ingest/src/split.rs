//! Splits one signed delivery into events (contract §3, "Types").
//!
//! Reading is lenient: ids and times may be numbers or strings, items may lack
//! `sender` or `timestamp`. Nothing signed is dropped: whatever cannot be read
//! becomes an `unknown`, `invalid` or `unparsed` event carrying the raw input.
//! Each item's `data` is its raw JSON text, so Facebook's escapes survive.
//! Items are read with [`Lenient`]: one that serde_json refuses (a lone surrogate,
//! a number out of range) is still typed by its fields and hashed losslessly, so
//! it keeps an id of its own.

use base64::Engine;
use chrono::{DateTime, Utc};
use pagesync_schema::fbtime::{epoch_millis, from_millis};
use pagesync_schema::lenient::{JsonRef, Lenient};
use pagesync_schema::{Event, EventId, EventType, PageId, Platform, Psid, Source, event_id};
use serde_json::Value;
use serde_json::value::RawValue;

mod instagram;
mod read;

use pagesync_schema::lenient::field;
use read::{Members, PageKey, list};

/// A `page_change` without `value` hashes as `null`.
static NULL: Value = Value::Null;

/// Every event of a delivery body, in the order of the body.
pub fn split(body: &[u8], received_at: DateTime<Utc>) -> Vec<Event> {
    let Some(raw) = json_object(body) else {
        return vec![unparsed(body, received_at)];
    };
    let mut out = Vec::new();
    let ctx = Ctx {
        received_at,
        platform: Platform::Messenger,
    };
    ctx.delivery(raw, &mut out);
    out
}

/// The body as raw JSON when it is one JSON object.
fn json_object(body: &[u8]) -> Option<&RawValue> {
    let raw: &RawValue = serde_json::from_slice(body).ok()?;
    raw.get().starts_with('{').then_some(raw)
}

/// The members of an entry that splitting reads.
struct Entry<'a> {
    page: PageKey,
    time_ms: Option<i64>,
    messaging: Option<&'a RawValue>,
    standby: Option<&'a RawValue>,
    changes: Option<&'a RawValue>,
}

impl<'a> Entry<'a> {
    /// `None` when the entry is not a JSON object.
    fn of(raw: &'a RawValue) -> Option<Self> {
        let m = Members::of(raw)?;
        Some(Self {
            page: PageKey::of(m.get("id")),
            time_ms: m
                .get("time")
                .and_then(|t| epoch_millis(Lenient::of_raw(t).value())),
            messaging: m.get("messaging"),
            standby: m.get("standby"),
            changes: m.get("changes"),
        })
    }
}

/// Which list of an entry an item came from.
#[derive(Clone, Copy)]
enum List {
    Messaging,
    Standby,
    Changes,
}

#[derive(Clone, Copy)]
struct Ctx {
    received_at: DateTime<Utc>,
    /// The platform of the delivery's `object`; Messenger for foreign objects.
    platform: Platform,
}

impl Ctx {
    fn delivery(&self, raw: &RawValue, out: &mut Vec<Event>) {
        let members = Members::of(raw);
        let member = |key| members.as_ref().and_then(|m| m.get(key));
        let Some(entries) = member("entry").and_then(list) else {
            out.push(self.unknown(raw, None, &PageKey::none(), None));
            return;
        };
        let platform = member("object").and_then(|o| {
            let object = Lenient::of_raw(o);
            let object = object.value().as_str()?;
            Platform::ALL
                .into_iter()
                .find(|p| p.webhook_object() == object)
        });
        for entry in entries {
            if let Some(platform) = platform {
                Ctx { platform, ..*self }.page_entry(entry, out);
            } else {
                let page =
                    Members::of(entry).map_or_else(PageKey::none, |m| PageKey::of(m.get("id")));
                out.push(self.unknown(entry, None, &page, None));
            }
        }
    }

    fn page_entry(&self, raw: &RawValue, out: &mut Vec<Event>) {
        let Some(entry) = Entry::of(raw) else {
            out.push(self.unknown(raw, None, &PageKey::none(), None));
            return;
        };
        let page = PageId::parse(entry.page.text.as_str()).ok();
        let entry_time = entry.time_ms;
        let lists = [
            (List::Messaging, entry.messaging),
            (List::Standby, entry.standby),
            (List::Changes, entry.changes),
        ];
        let mut items = Vec::new();
        for (kind, present) in lists {
            let Some(present) = present else { continue };
            match list(present) {
                Some(list_items) => items.extend(list_items.into_iter().map(|i| (kind, i))),
                None => {
                    // A list that is not a list: keep the entry whole rather than guess.
                    out.push(self.unknown(raw, page.as_ref(), &entry.page, entry_time));
                    return;
                }
            }
        }
        if lists.iter().all(|(_, p)| p.is_none()) {
            out.push(self.unknown(raw, page.as_ref(), &entry.page, entry_time));
            return;
        }
        let item_ctx = ItemCtx {
            page: page.as_ref(),
            page_key: &entry.page,
            entry_time,
        };
        for (kind, item) in items {
            out.push(self.item(&item_ctx, kind, item));
        }
    }

    fn item(&self, ctx: &ItemCtx<'_>, list: List, raw: &RawValue) -> Event {
        let doc = Lenient::of_raw(raw);
        match (self.platform, list) {
            (Platform::Messenger, List::Changes) => self.change(ctx, raw, &doc),
            // §8: Instagram's `changes` (comments, mentions) and `standby` are not named yet.
            (Platform::Instagram, List::Changes | List::Standby) => {
                self.unknown_item(raw, &doc, ctx.page, ctx.page_key, ctx.entry_time)
            }
            (_, List::Messaging | List::Standby) => {
                let kind = match list {
                    List::Standby => Some(EventType::Standby),
                    _ => messaging_type(self.platform, doc.value()),
                };
                match kind {
                    Some(kind) => self.messaging(ctx, raw, &doc, kind),
                    None => {
                        // §3: the item's own timestamp first.
                        let time = item_time(doc.value()).or(ctx.entry_time);
                        self.unknown_item(raw, &doc, ctx.page, ctx.page_key, time)
                    }
                }
            }
        }
    }

    fn messaging(
        &self,
        ctx: &ItemCtx<'_>,
        raw: &RawValue,
        doc: &Lenient,
        kind: EventType,
    ) -> Event {
        let item = doc.value();
        let echo = is_echo(item);
        let party = if echo { "recipient" } else { "sender" };
        let psid = item
            .get(party)
            .and_then(|p| p.get("id"))
            .and_then(field::id_string)
            .and_then(|s| Psid::parse(s).ok());
        let time_ms = item_time(item)
            .or_else(|| watermark(item, kind).and_then(|w| epoch_millis(&Value::from(w))))
            .or(ctx.entry_time);
        let hashed = |kind| event_id::hashed(kind, &ctx.page_key.bytes, doc.view());
        let (Some(page), Some(psid)) = (ctx.page, psid) else {
            // An invalid item under a valid page keeps that page (contract §3).
            let id = hashed(EventType::Invalid);
            return self.event(
                EventType::Invalid,
                id,
                ctx.page.cloned(),
                None,
                time_ms,
                raw,
            );
        };
        let id = match kind {
            // An unsend names the message it deletes: the mid is not its own id.
            EventType::Message
                if self.platform == Platform::Instagram && instagram::is_unsend(item) =>
            {
                None
            }
            EventType::Message | EventType::MessageEcho => item
                .pointer("/message/mid")
                .and_then(field::id_string)
                .and_then(|mid| event_id::for_message(&mid)),
            EventType::Delivery | EventType::Read => {
                watermark(item, kind).map(|w| event_id::for_receipt(kind, page, &psid, w))
            }
            _ => None,
        }
        .unwrap_or_else(|| hashed(kind));
        self.event(kind, id, Some(page.clone()), Some(psid), time_ms, raw)
    }

    fn change(&self, ctx: &ItemCtx<'_>, raw: &RawValue, doc: &Lenient) -> Event {
        let item = doc.view();
        // A field name that is not valid Unicode names no field: the item is unknown.
        let Some(field) = item.get("field").and_then(JsonRef::as_str) else {
            return self.unknown_item(raw, doc, ctx.page, ctx.page_key, ctx.entry_time);
        };
        let Some(page) = ctx.page else {
            let id = event_id::hashed(EventType::Invalid, &ctx.page_key.bytes, item);
            return self.event(EventType::Invalid, id, None, None, ctx.entry_time, raw);
        };
        let time_ms = ctx
            .entry_time
            .unwrap_or_else(|| self.received_at.timestamp_millis());
        let value = item.get("value").unwrap_or(JsonRef::from(&NULL));
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

    /// An `unknown` event of a whole entry or body.
    fn unknown(
        &self,
        raw: &RawValue,
        page: Option<&PageId>,
        page_key: &PageKey,
        time_ms: Option<i64>,
    ) -> Event {
        self.unknown_item(raw, &Lenient::of_raw(raw), page, page_key, time_ms)
    }

    fn unknown_item(
        &self,
        raw: &RawValue,
        doc: &Lenient,
        page: Option<&PageId>,
        page_key: &PageKey,
        time_ms: Option<i64>,
    ) -> Event {
        let id = event_id::hashed(EventType::Unknown, &page_key.bytes, doc.view());
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
            platform: self.platform,
            time: time_ms.and_then(from_millis).unwrap_or(self.received_at),
            received_at: self.received_at,
            data: raw.to_owned(),
        }
    }
}

struct ItemCtx<'a> {
    page: Option<&'a PageId>,
    page_key: &'a PageKey,
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
        platform: Platform::Messenger,
        time: received_at,
        received_at,
        data: serde_json::value::to_raw_value(&data).expect("a JSON object serialises"),
    }
}

/// The type a `messaging[]` item carries, by the first key present that the
/// platform names.
fn messaging_type(platform: Platform, item: &Value) -> Option<EventType> {
    let obj = item.as_object()?;
    let keys: &[(&str, EventType)] = match platform {
        Platform::Messenger => &EventType::MESSAGING_KEYS,
        Platform::Instagram => &instagram::MESSAGING_KEYS,
    };
    let (_, kind) = keys.iter().find(|(key, _)| obj.contains_key(*key))?;
    Some(if *kind == EventType::Message && is_echo(item) {
        EventType::MessageEcho
    } else {
        *kind
    })
}

fn is_echo(item: &Value) -> bool {
    field::flag(item.pointer("/message/is_echo"))
}

/// The receipt's watermark as sent (an integer, or a string of one). Instagram's
/// `read` names a `mid` instead: it has none.
fn watermark(item: &Value, kind: EventType) -> Option<i64> {
    let key = match kind {
        EventType::Delivery => "delivery",
        EventType::Read => "read",
        _ => return None,
    };
    field::int(item.get(key)?.get("watermark")?)
}

/// The item's own `timestamp`.
fn item_time(item: &Value) -> Option<i64> {
    item.get("timestamp").and_then(epoch_millis)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod instagram_tests;
