//! Instagram deliveries (contract §8), from payloads shaped like Meta's examples.

use super::*;
use pagesync_schema::canonical::{canonical_json, sha256_hex};
use serde_json::json;

const ACCOUNT: &str = "17841405822304914";
const IGSID: &str = "6485239621563051";
const FIXTURE: &str = include_str!("../../tests/fixtures/instagram.json");
const MESSENGER_FIXTURE: &str = include_str!("../../tests/fixtures/every_type.json");

fn now() -> DateTime<Utc> {
    from_millis(1_763_700_000_000).unwrap()
}

fn split_json(v: &Value) -> Vec<Event> {
    split(v.to_string().as_bytes(), now())
}

fn one_item(item: Value) -> Event {
    let body = json!({"object": "instagram", "entry": [{"id": ACCOUNT, "time": 1569262486134_i64, "messaging": [item]}]});
    let events = split_json(&body);
    assert_eq!(events.len(), 1, "{events:?}");
    events.into_iter().next().unwrap()
}

fn hashed_id(kind: &str, item: &Value) -> String {
    let material = format!("{ACCOUNT}\n{}", canonical_json(item));
    format!("{kind}:{}", sha256_hex(material.as_bytes()))
}

#[test]
fn every_item_of_metas_instagram_payloads_gets_its_type_id_and_account() {
    let events = split(FIXTURE.as_bytes(), now());
    let seen: Vec<(EventType, &str)> = events
        .iter()
        .map(|e| (e.event_type, e.id.as_str()))
        .collect();
    use EventType as T;
    let expected_types = [
        T::Message,
        T::Message,
        T::Message,
        T::Message,
        T::MessageEcho,
        T::Reaction,
        T::Reaction,
        T::Read,
        T::Postback,
        T::Referral,
        T::MessageEdit,
        T::Message,
        T::Unknown,
        T::Unknown,
    ];
    assert_eq!(
        seen.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        expected_types
    );
    let mids = [
        "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA0OTE0",
        "ig_mid_image",
        "ig_mid_story_mention",
        "ig_mid_story_reply",
        "ig_mid_echo",
    ];
    for (event, mid) in events.iter().zip(mids) {
        assert_eq!(event.id.as_str(), mid);
    }
    for e in &events {
        assert_eq!(e.platform, Platform::Instagram, "{e:?}");
        assert_eq!(e.page_id.as_ref().unwrap().as_str(), ACCOUNT);
        assert_eq!(e.source, Source::Ingest);
        let expected_psid = (e.event_type != T::Unknown).then_some(IGSID);
        assert_eq!(e.psid.as_ref().map(Psid::as_str), expected_psid, "{e:?}");
    }
    let mut ids: Vec<&str> = seen.iter().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "every item has an id of its own");
}

#[test]
fn an_instagram_echo_is_keyed_by_the_customer_it_was_sent_to() {
    let e = one_item(
        json!({"sender": {"id": ACCOUNT}, "recipient": {"id": IGSID},
        "timestamp": 1569262489349_i64, "message": {"mid": "ig_echo", "text": "hi", "is_echo": true}}),
    );
    assert_eq!(e.event_type, EventType::MessageEcho);
    assert_eq!(e.psid.unwrap().as_str(), IGSID);
    assert_eq!(e.id.as_str(), "ig_echo");
    assert_eq!(e.time.timestamp_millis(), 1569262489349);
}

#[test]
fn an_unsend_is_a_message_whose_id_is_not_the_mid_it_deletes() {
    let item = json!({"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT}, "timestamp": 1569262496349_i64,
        "message": {"mid": "ig_mid_1", "is_deleted": true}});
    let e = one_item(item.clone());
    assert_eq!(e.event_type, EventType::Message);
    assert_eq!(e.id.as_str(), hashed_id("message", &item));
    let as_text = json!({"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT},
        "message": {"mid": "ig_mid_2", "is_deleted": "true"}});
    assert!(one_item(as_text).id.as_str().starts_with("message:"));
}

#[test]
fn a_seen_receipt_names_a_mid_so_its_id_is_hashed_and_its_time_is_its_timestamp() {
    for key in ["read", "messaging_seen"] {
        let item = json!({"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT},
            "timestamp": 1569262492349_i64, key: {"mid": "ig_mid_echo"}});
        let e = one_item(item.clone());
        assert_eq!(e.event_type, EventType::Read, "{key}");
        assert_eq!(e.id.as_str(), hashed_id("read", &item));
        assert_eq!(e.time.timestamp_millis(), 1569262492349);
    }
}

#[test]
fn what_instagram_does_not_name_is_unknown_under_the_account() {
    let delivery = json!({"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT},
        "delivery": {"mids": ["m"], "watermark": 1}});
    let body = json!({"object": "instagram", "entry": [
        {"id": ACCOUNT, "time": 1520622968, "messaging": [delivery],
         "standby": [{"sender": {"id": IGSID}, "message": {"mid": "s1"}}],
         "changes": [{"field": "comments", "value": {"id": "c1", "text": "nice"}}]},
        {"id": ACCOUNT, "time": 1520622968}
    ]});
    let events = split_json(&body);
    assert_eq!(events.len(), 4);
    for e in &events {
        assert_eq!(e.event_type, EventType::Unknown, "{e:?}");
        assert_eq!(e.page_id.as_ref().unwrap().as_str(), ACCOUNT);
        assert_eq!(e.platform, Platform::Instagram);
    }
    // A mention's `time` is in seconds.
    assert_eq!(events[2].time.timestamp_millis(), 1_520_622_968_000);
}

#[test]
fn an_unsafe_customer_id_under_a_valid_account_keeps_the_accounts_subject() {
    let prefix = "fb".parse::<pagesync_schema::SubjectPrefix>().unwrap();
    for object in ["page", "instagram"] {
        let body = json!({"object": object, "entry": [{"id": ACCOUNT, "messaging": [
            {"sender": {"id": "../x"}, "recipient": {"id": ACCOUNT}, "message": {"mid": "m_bad"}}]}]});
        let e = &split_json(&body)[0];
        assert_eq!(e.event_type, EventType::Invalid, "{object}");
        assert_eq!(e.page_id.as_ref().unwrap().as_str(), ACCOUNT, "{object}");
        assert_eq!(e.subject(&prefix), format!("fb.{ACCOUNT}.invalid"));
        assert!(e.psid.is_none());
        let body = json!({"object": object, "entry": [{"id": "a.b", "messaging": [
            {"sender": {"id": IGSID}, "message": {"mid": "m_bad"}}]}]});
        let e = &split_json(&body)[0];
        assert_eq!(e.subject(&prefix), "fb._.invalid", "{object}");
    }
}

#[test]
fn messenger_deliveries_and_foreign_objects_stay_messenger() {
    let events = split(MESSENGER_FIXTURE.as_bytes(), now());
    assert!(events.len() > 10);
    assert!(events.iter().all(|e| e.platform == Platform::Messenger));
    let foreign = json!({"object": "whatsapp_business_account", "entry": [{"id": ACCOUNT}]});
    let e = &split_json(&foreign)[0];
    assert_eq!(e.event_type, EventType::Unknown);
    assert!(e.page_id.is_none());
    assert_eq!(e.platform, Platform::Messenger);
}
