//! The events the inbox's writes publish (contract §3), each shaped as the
//! webhook item Facebook would send for the same fact, so the projector treats a
//! reply like Facebook's own echo of it (same id: the mid) and the webhook's copy
//! wins when it arrives.

use chrono::{DateTime, Utc};
use pagesync_graph::OutgoingMessage;
use pagesync_schema::{Event, EventType, Source, event_id};
use serde_json::{Value, json};

use super::target::Target;

/// Facebook gives `app_id` as a number: ours too, when it is one.
fn app_id_value(app_id: &str) -> Value {
    app_id
        .parse::<u64>()
        .map_or_else(|_| Value::from(app_id), Value::from)
}

/// The `message_echo` of a reply Facebook accepted with `mid`: sender the account,
/// recipient the customer. `None` when the mid cannot be an event id.
pub fn reply_echo(
    target: &Target,
    message: &OutgoingMessage<'_>,
    mid: &str,
    app_id: &str,
    at: DateTime<Utc>,
) -> Option<Event> {
    let id = event_id::for_message(mid)?;
    let mut item = json!({"mid": mid, "is_echo": true, "app_id": app_id_value(app_id)});
    match message {
        OutgoingMessage::Text(text) => item["text"] = (*text).into(),
        OutgoingMessage::Attachment { kind, url } => {
            item["attachments"] = json!([{"type": kind.as_str(), "payload": {"url": url}}]);
        }
    }
    let data = json!({
        "sender": {"id": target.page.as_str()},
        "recipient": {"id": target.psid.as_str()},
        "timestamp": at.timestamp_millis(),
        "message": item,
    });
    Some(event(target, id, EventType::MessageEcho, at, &data))
}

/// A `conversation_status` event, id `status:<page>:<psid>:<at>`.
pub fn status_change(target: &Target, open: bool, at: DateTime<Utc>) -> Event {
    let at_ms = at.timestamp_millis();
    let data = json!({
        "psid": target.psid.as_str(),
        "status": if open { "open" } else { "closed" },
        "at": at_ms,
    });
    let id = event_id::for_status(&target.page, &target.psid, at_ms);
    event(target, id, EventType::ConversationStatus, at, &data)
}

fn event(
    target: &Target,
    id: pagesync_schema::EventId,
    event_type: EventType,
    at: DateTime<Utc>,
    data: &Value,
) -> Event {
    Event {
        id,
        event_type,
        source: Source::OauthApi,
        page_id: Some(target.page.clone()),
        psid: Some(target.psid.clone()),
        platform: target.platform,
        time: at,
        received_at: at,
        data: serde_json::value::to_raw_value(data).expect("a JSON value serialises"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagesync_graph::AttachmentKind;
    use pagesync_schema::{PageId, Platform, Psid};

    fn target(platform: Platform) -> Target {
        Target {
            page: PageId::parse("17841400000000001").unwrap(),
            psid: Psid::parse("u1").unwrap(),
            platform,
            sending_page: PageId::parse("101").ok(),
        }
    }

    #[test]
    fn an_echo_looks_like_facebooks_from_the_account_to_the_customer() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let url = "https://cdn.test/a.png";
        let e = reply_echo(
            &target(Platform::Instagram),
            &OutgoingMessage::Attachment {
                kind: AttachmentKind::Image,
                url,
            },
            "m_1",
            "1234567890",
            at,
        )
        .unwrap();
        let data: Value = serde_json::from_str(e.data.get()).unwrap();
        assert_eq!(
            data,
            json!({"sender": {"id": "17841400000000001"}, "recipient": {"id": "u1"},
                   "timestamp": 1_700_000_000_123i64,
                   "message": {"mid": "m_1", "is_echo": true, "app_id": 1234567890u64,
                               "attachments": [{"type": "image", "payload": {"url": url}}]}})
        );
        assert_eq!(e.id.as_str(), "m_1");
        assert_eq!(e.source, Source::OauthApi);
        assert_eq!(e.platform, Platform::Instagram);
        assert_eq!(e.psid.unwrap().as_str(), "u1");
    }

    #[test]
    fn a_status_change_is_named_by_page_customer_and_time() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let e = status_change(&target(Platform::Messenger), false, at);
        assert_eq!(e.id.as_str(), "status:17841400000000001:u1:1700000000000");
        let data: Value = serde_json::from_str(e.data.get()).unwrap();
        assert_eq!(
            data,
            json!({"psid": "u1", "status": "closed", "at": 1_700_000_000_000i64})
        );
    }
}
