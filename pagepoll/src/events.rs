//! Building contract events from Graph API data, in the webhook's item shape.

use chrono::{DateTime, Utc};
use pagesync_graph::{GraphMessage, PageNode, Participant};
use pagesync_schema::{Event, EventType, PageId, Platform, Psid, Source, event_id};
use serde_json::{Value, json};

/// A `message` or `message_echo` event whose `data` is the webhook item a
/// Messenger webhook would carry for this message. `None` when the message has
/// no usable id, author or customer (logged by the caller).
pub fn message_event(page: &PageId, m: &GraphMessage, received_at: DateTime<Utc>) -> Option<Event> {
    let id = event_id::for_message(&m.id)?;
    let from = m.from.as_ref()?.id.as_str();
    let echo = from == page.as_str();
    let customer = if echo {
        m.to.data
            .iter()
            .map(|p| p.id.as_str())
            .find(|id| *id != page.as_str())?
    } else {
        from
    };
    let psid = Psid::parse(customer).ok()?;
    let time = m.created_time.unwrap_or(received_at);
    let mut message = json!({ "mid": m.id });
    if let Some(text) = m.message.as_deref().filter(|t| !t.is_empty()) {
        message["text"] = text.into();
    }
    if echo {
        message["is_echo"] = true.into();
    }
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .flat_map(|a| a.data.iter())
        .map(|a| json!({"type": a.webhook_type(), "payload": {"url": a.url()}}))
        .collect();
    if !attachments.is_empty() {
        message["attachments"] = attachments.into();
    }
    let (sender, recipient) = if echo {
        (page.as_str(), psid.as_str())
    } else {
        (psid.as_str(), page.as_str())
    };
    let data = json!({
        "sender": {"id": sender},
        "recipient": {"id": recipient},
        "timestamp": time.timestamp_millis(),
        "message": message,
    });
    let times = (time, received_at);
    let kind = if echo {
        EventType::MessageEcho
    } else {
        EventType::Message
    };
    Some(conversation_event(kind, id, page, psid, times, &data))
}

/// A conversation's event as the poller publishes it; `times` is (event time, receipt).
fn conversation_event(
    event_type: EventType,
    id: pagesync_schema::EventId,
    page: &PageId,
    psid: Psid,
    (time, received_at): (DateTime<Utc>, DateTime<Utc>),
    data: &Value,
) -> Event {
    Event {
        id,
        event_type,
        source: Source::Poller,
        page_id: Some(page.clone()),
        psid: Some(psid),
        platform: pagesync_schema::Platform::Messenger,
        time,
        received_at,
        data: serde_json::value::to_raw_value(data).expect("a JSON value serialises"),
    }
}

/// `customer_profile` events for the named customers among a conversation's
/// participants (the page itself is one of them): id
/// `profile:<page>:<psid>:<sha256 of the name>`, data `{"psid", "name"}`, time the
/// conversation's `updated_time` (docs/events.md).
pub fn profile_events(
    page: &PageId,
    participants: &[Participant],
    time: DateTime<Utc>,
    received_at: DateTime<Utc>,
) -> Vec<Event> {
    participants
        .iter()
        .filter(|p| p.id != page.as_str())
        .filter_map(|p| {
            let name = p.name.as_deref().map(str::trim).filter(|n| !n.is_empty())?;
            let psid = Psid::parse(p.id.as_str()).ok()?;
            let data = json!({"psid": psid.as_str(), "name": name});
            let id = event_id::for_profile(page, &psid, name);
            let (kind, times) = (EventType::CustomerProfile, (time, received_at));
            Some(conversation_event(kind, id, page, psid, times, &data))
        })
        .collect()
}

/// A message of the page's linked Instagram account: the same item shape, with the
/// account id (IGID) where a page event has the page id (`pageid`, the business
/// side of `sender`/`recipient`), and `platform: instagram` (contract §8).
pub fn instagram_message_event(
    account: &PageId,
    m: &GraphMessage,
    received_at: DateTime<Utc>,
) -> Option<Event> {
    let mut event = message_event(account, m, received_at)?;
    event.platform = Platform::Instagram;
    Some(event)
}

/// A `page_snapshot` event: the page object (never a token, at any depth), id
/// `snapshot:<page>:<fetched ms>`.
pub fn snapshot_event(page: &PageId, node: &PageNode, fetched: DateTime<Utc>) -> Event {
    let mut data = node.to_value();
    pagesync_schema::tokens::strip_tokens(&mut data);
    Event {
        id: event_id::for_snapshot(page, fetched.timestamp_millis()),
        event_type: EventType::PageSnapshot,
        source: Source::Poller,
        page_id: Some(page.clone()),
        psid: None,
        platform: pagesync_schema::Platform::Messenger,
        time: fetched,
        received_at: fetched,
        data: serde_json::value::to_raw_value(&data).expect("a JSON value serialises"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(v: Value) -> GraphMessage {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_customer_message_has_the_webhook_item_shape() {
        let page = PageId::parse("101").unwrap();
        let m = msg(json!({
            "id": "m_1", "created_time": "2026-11-01T10:00:00+0000", "message": "Hello",
            "from": {"id": "202", "name": "C"}, "to": {"data": [{"id": "101"}]},
            "attachments": {"data": [{"mime_type": "image/png", "image_data": {"url": "https://x/a.png"}}]}
        }));
        let e = message_event(&page, &m, Utc::now()).unwrap();
        assert_eq!(e.event_type, EventType::Message);
        assert_eq!(e.id.as_str(), "m_1");
        assert_eq!(e.psid.as_ref().unwrap().as_str(), "202");
        let data: Value = serde_json::from_str(e.data.get()).unwrap();
        assert_eq!(
            data,
            json!({"sender": {"id": "202"}, "recipient": {"id": "101"}, "timestamp": 1793527200000_i64,
                   "message": {"mid": "m_1", "text": "Hello",
                               "attachments": [{"type": "image", "payload": {"url": "https://x/a.png"}}]}})
        );
    }

    #[test]
    fn a_page_sent_message_is_an_echo_whose_psid_is_the_recipient() {
        let page = PageId::parse("101").unwrap();
        let m = msg(json!({
            "id": "m_2", "created_time": "2026-11-01T10:00:00+0000", "message": "Hi back",
            "from": {"id": "101"}, "to": {"data": [{"id": "202"}]}
        }));
        let e = message_event(&page, &m, Utc::now()).unwrap();
        assert_eq!(e.event_type, EventType::MessageEcho);
        assert_eq!(e.psid.as_ref().unwrap().as_str(), "202");
        let data: Value = serde_json::from_str(e.data.get()).unwrap();
        assert_eq!(data["sender"]["id"], "101");
        assert_eq!(data["recipient"]["id"], "202");
        assert_eq!(data["message"]["is_echo"], true);
    }

    #[test]
    fn a_snapshot_never_carries_a_token_at_any_depth() {
        let page = PageId::parse("101").unwrap();
        let Value::Object(fields) = json!({
            "id": "101", "name": "N",
            "page": {"id": "101", "access_token": "EAAB1"},
            "instagram_business_account": {"id": "9", "page_access_token": "EAAB2"}
        }) else {
            unreachable!()
        };
        let node = PageNode {
            id: "101".into(),
            fields,
        };
        let e = snapshot_event(&page, &node, Utc::now());
        let data: Value = serde_json::from_str(e.data.get()).unwrap();
        assert_eq!(
            data,
            json!({"id": "101", "name": "N", "page": {"id": "101"}, "instagram_business_account": {"id": "9"}})
        );
    }

    #[test]
    fn named_customers_become_profile_events_and_the_page_does_not() {
        let page = PageId::parse("101").unwrap();
        let people: Vec<Participant> = serde_json::from_value(json!([
            {"id": "101", "name": "Dog Page"}, {"id": "202", "name": " Ada "},
            {"id": "303"}, {"id": "../x", "name": "Bad"}
        ]))
        .unwrap();
        let events = profile_events(&page, &people, Utc::now(), Utc::now());
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.event_type, EventType::CustomerProfile);
        assert!(e.id.as_str().starts_with("profile:101:202:"));
        let data: Value = serde_json::from_str(e.data.get()).unwrap();
        assert_eq!(data, json!({"psid": "202", "name": "Ada"}));
    }

    #[test]
    fn messages_without_author_or_with_unsafe_ids_are_skipped() {
        let page = PageId::parse("101").unwrap();
        assert!(message_event(&page, &msg(json!({"id": "m_3"})), Utc::now()).is_none());
        let bad = msg(json!({"id": "m_4", "from": {"id": "../x"}}));
        assert!(message_event(&page, &bad, Utc::now()).is_none());
    }
}
