use super::*;
use pagesync_schema::Platform;
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
