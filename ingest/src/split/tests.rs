use super::*;
use pagesync_schema::canonical::{canonical_json, sha256_hex};
use pagesync_schema::testing::{self, Model};
use proptest::prelude::*;
use serde_json::json;

const PAGE: &str = "101368371725791";
const PSID: &str = "123456789";

fn now() -> DateTime<Utc> {
    from_millis(1_763_700_000_000).unwrap()
}

fn split_json(v: &Value) -> Vec<Event> {
    split(v.to_string().as_bytes(), now())
}

fn messaging(item: Value) -> Value {
    json!({"object": "page", "entry": [{"id": PAGE, "time": 1458692752478_i64, "messaging": [item]}]})
}

fn one(v: &Value) -> Event {
    let events = split_json(v);
    assert_eq!(events.len(), 1, "{events:?}");
    events.into_iter().next().unwrap()
}

fn inbound(extra: Value) -> Value {
    let mut item =
        json!({"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1458692752478_i64});
    item.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    item
}

#[test]
fn a_text_message_is_a_message_identified_by_its_mid() {
    let e = one(&messaging(inbound(
        json!({"message": {"mid": "m_1", "text": "hello, world!"}}),
    )));
    assert_eq!(e.event_type, EventType::Message);
    assert_eq!(e.id.as_str(), "m_1");
    assert_eq!(e.page_id.unwrap().as_str(), PAGE);
    assert_eq!(e.psid.unwrap().as_str(), PSID);
    assert_eq!(e.time.timestamp_millis(), 1458692752478);
    assert_eq!(e.source, Source::Ingest);
}

#[test]
fn attachments_and_quick_replies_are_messages_with_data_kept_whole() {
    let item = inbound(
        json!({"message": {"mid": "mid.$cAAJ", "attachments": [{"type": "image", "payload": {"url": "https://x/y.png"}}], "quick_reply": {"payload": "P"}}}),
    );
    let e = one(&messaging(item.clone()));
    assert_eq!(e.event_type, EventType::Message);
    assert_eq!(e.id.as_str(), "mid.$cAAJ");
    assert_eq!(serde_json::from_str::<Value>(e.data.get()).unwrap(), item);
}

#[test]
fn an_echo_with_a_numeric_app_id_is_keyed_by_the_recipient() {
    let item = json!({"sender": {"id": PAGE}, "recipient": {"id": PSID}, "timestamp": 1457764197627_i64,
        "message": {"is_echo": true, "app_id": 1517776481860111_i64, "mid": "m_echo", "text": "hi"}});
    let e = one(&messaging(item));
    assert_eq!(e.event_type, EventType::MessageEcho);
    assert_eq!(e.psid.unwrap().as_str(), PSID);
    assert_eq!(e.id.as_str(), "m_echo");
}

#[test]
fn receipts_are_identified_by_page_psid_and_watermark() {
    let delivery = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE},
        "delivery": {"mids": ["m_1"], "watermark": 1458668856253_i64}});
    let e = one(&messaging(delivery));
    assert_eq!(e.event_type, EventType::Delivery);
    assert_eq!(
        e.id.as_str(),
        format!("delivery:{PAGE}:{PSID}:1458668856253")
    );
    // No timestamp: the watermark is the event's time.
    assert_eq!(e.time.timestamp_millis(), 1458668856253);

    let read = inbound(json!({"read": {"watermark": "1458668856253"}}));
    let e = one(&messaging(read));
    assert_eq!(e.event_type, EventType::Read);
    assert_eq!(e.id.as_str(), format!("read:{PAGE}:{PSID}:1458668856253"));
}

#[test]
fn every_other_messaging_key_names_its_type_and_gets_a_hashed_id() {
    let cases = [
        (
            "postback",
            json!({"mid": "m_pb", "title": "Start", "payload": "GET_STARTED"}),
            EventType::Postback,
        ),
        (
            "reaction",
            json!({"reaction": "love", "emoji": "\u{2764}", "action": "react", "mid": "m_1"}),
            EventType::Reaction,
        ),
        (
            "message_edit",
            json!({"mid": "m_1", "text": "edited", "num_edit": 2}),
            EventType::MessageEdit,
        ),
        (
            "optin",
            json!({"type": "notification_messages", "payload": "x"}),
            EventType::Optin,
        ),
        (
            "referral",
            json!({"ref": "r", "source": "SHORTLINK", "type": "OPEN_THREAD"}),
            EventType::Referral,
        ),
    ];
    for (key, body, kind) in cases {
        let item = inbound(json!({ key: body }));
        let e = one(&messaging(item.clone()));
        assert_eq!(e.event_type, kind, "{key}");
        let material = format!(
            "{PAGE}\n{}",
            pagesync_schema::canonical::canonical_json(&item)
        );
        assert_eq!(
            e.id.as_str(),
            format!("{kind}:{}", sha256_hex(material.as_bytes())),
            "{key}"
        );
    }
}

#[test]
fn standby_items_are_standby_events_of_the_customer() {
    let body = json!({"object": "page", "entry": [{"id": PAGE, "time": 1, "standby": [
        inbound(json!({"message": {"mid": "m_sb", "text": "hi"}}))]}]});
    let e = one(&body);
    assert_eq!(e.event_type, EventType::Standby);
    assert_eq!(e.psid.unwrap().as_str(), PSID);
    assert!(e.id.as_str().starts_with("standby:"));
}

#[test]
fn page_changes_are_identified_by_field_time_and_value() {
    let body = json!({"object": "page", "entry": [{"id": PAGE, "time": 1520383571, "changes": [
        {"field": "name", "value": "New name"},
        {"field": "category", "value": "Pet Service"}]}]});
    let events = split_json(&body);
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.event_type == EventType::PageChange && e.psid.is_none())
    );
    let value_hash = sha256_hex(b"\"New name\"");
    assert_eq!(
        events[0].id.as_str(),
        format!("change:{PAGE}:name:1520383571000:{value_hash}")
    );
    assert_eq!(events[0].time.timestamp(), 1520383571);
}

#[test]
fn a_batch_of_entries_yields_one_event_per_item_in_order() {
    let body = json!({"object": "page", "entry": [
        {"id": PAGE, "time": 1, "messaging": [inbound(json!({"message": {"mid": "m_a"}}))]},
        {"id": "202", "time": 2, "messaging": [inbound(json!({"message": {"mid": "m_b"}}))],
         "changes": [{"field": "name", "value": "x"}]},
    ]});
    let events = split_json(&body);
    let ids: Vec<_> = events.iter().map(|e| e.id.as_str().to_owned()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(&ids[..2], ["m_a", "m_b"]);
    assert_eq!(events[1].page_id.as_ref().unwrap().as_str(), "202");
}

#[test]
fn numeric_ids_and_string_timestamps_are_read_leniently() {
    let body = json!({"object": "page", "entry": [{"id": 101368371725791_i64, "time": "1458692752478", "messaging": [
        {"sender": {"id": 123456789}, "recipient": {"id": 101368371725791_i64}, "timestamp": "1527459824",
         "postback": {"title": "t"}}]}]});
    let e = one(&body);
    assert_eq!(e.event_type, EventType::Postback);
    assert_eq!(e.page_id.unwrap().as_str(), PAGE);
    assert_eq!(e.psid.unwrap().as_str(), PSID);
    assert_eq!(e.time.timestamp_millis(), 1527459824000);
}

#[test]
fn unsafe_ids_make_invalid_events_that_keep_a_valid_page() {
    for (page, psid, kept) in [
        ("../../etc", PSID, None),
        ("_", PSID, None),
        (PAGE, "a/b", Some(PAGE)),
        (PAGE, "", Some(PAGE)),
    ] {
        let body = json!({"object": "page", "entry": [{"id": page, "messaging": [
            {"sender": {"id": psid}, "recipient": {"id": page}, "message": {"mid": "m_x"}}]}]});
        let e = one(&body);
        assert_eq!(e.event_type, EventType::Invalid, "{page} {psid}");
        assert_eq!(
            e.page_id.as_ref().map(PageId::as_str),
            kept,
            "{page} {psid}"
        );
        assert!(e.psid.is_none());
    }
    let no_sender = messaging(json!({"recipient": {"id": PAGE}, "message": {"mid": "m"}}));
    let e = one(&no_sender);
    assert_eq!(e.event_type, EventType::Invalid);
    assert_eq!(e.page_id.unwrap().as_str(), PAGE);
}

#[test]
fn an_entry_whose_id_is_underscore_has_no_page() {
    let body = json!({"object": "page", "entry": [{"id": "_", "time": 1, "messaging": [
        inbound(json!({"message": {"mid": "m_u"}}))], "changes": [{"field": "name", "value": "x"}]}]});
    let events = split_json(&body);
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.event_type, EventType::Invalid);
        assert!(e.page_id.is_none());
    }
}

#[test]
fn an_unknown_messaging_item_takes_its_own_timestamp_before_the_entrys_time() {
    let item = inbound(json!({"account_linking": {"status": "linked"}}));
    let body = json!({"object": "page", "entry": [{"id": PAGE, "time": 1458692700000_i64, "messaging": [item]}]});
    let e = one(&body);
    assert_eq!(e.event_type, EventType::Unknown);
    assert_eq!(e.time.timestamp_millis(), 1458692752478);
    let body = json!({"object": "page", "entry": [{"id": PAGE, "time": 1458692752478_i64, "messaging": [
        {"sender": {"id": PSID}, "timestamp": "1527459824", "account_linking": {}}]}]});
    assert_eq!(one(&body).time.timestamp_millis(), 1527459824000);
    let untimed = json!({"object": "page", "entry": [{"id": PAGE, "time": 1458692752000_i64, "messaging": [
        {"sender": {"id": PSID}, "account_linking": {}}]}]});
    assert_eq!(one(&untimed).time.timestamp_millis(), 1458692752000);
}

#[test]
fn unknown_items_entries_and_objects_are_kept_as_unknown() {
    let unknown_item = messaging(inbound(json!({"policy_enforcement": {"action": "block"}})));
    assert_eq!(one(&unknown_item).event_type, EventType::Unknown);
    assert_eq!(one(&unknown_item).page_id.unwrap().as_str(), PAGE);

    let bare_entry =
        json!({"object": "page", "entry": [{"id": PAGE, "time": 1, "changed_fields": ["name"]}]});
    assert_eq!(one(&bare_entry).event_type, EventType::Unknown);

    let other_object = json!({"object": "user", "entry": [{"id": "1"}, {"id": "2"}]});
    let events = split_json(&other_object);
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.event_type == EventType::Unknown && e.page_id.is_none())
    );
    assert_ne!(events[0].id, events[1].id);

    for odd in [
        json!({}),
        json!({"object": "page"}),
        json!({"object": "page", "entry": {}}),
        json!({"object": "page", "entry": [[1, 2]]}),
        json!({"object": "page", "entry": [{"id": PAGE, "messaging": {}}]}),
    ] {
        let events = split_json(&odd);
        assert_eq!(events.len(), 1, "{odd}");
        assert_eq!(events[0].event_type, EventType::Unknown, "{odd}");
    }
}

#[test]
fn bodies_that_are_not_a_json_object_are_unparsed() {
    for body in [&b"not json"[..], b"[1,2]", b"\"page\"", b""] {
        let events = split(body, now());
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.event_type, EventType::Unparsed);
        assert_eq!(e.id.as_str(), format!("unparsed:{}", sha256_hex(body)));
        let data: Value = serde_json::from_str(e.data.get()).unwrap();
        assert_eq!(
            data,
            json!({"body": String::from_utf8_lossy(body), "encoding": "utf8"})
        );
    }
    let binary = split(&[0xff, 0xfe, 0x00], now());
    let data: Value = serde_json::from_str(binary[0].data.get()).unwrap();
    assert_eq!(data, json!({"body": "//4A", "encoding": "base64"}));
}

#[test]
fn data_keeps_facebooks_unicode_escapes_verbatim() {
    let body = br#"{"object":"page","entry":[{"id":"101","time":1,"messaging":[{"sender":{"id":"9"},"recipient":{"id":"101"},"timestamp":1,"message":{"mid":"m_u","text":"\u00e4 https:\/\/x"}}]}]}"#;
    let e = &split(body, now())[0];
    assert!(
        e.data.get().contains(r#""\u00e4 https:\/\/x""#),
        "{}",
        e.data.get()
    );
}

/// Generates JSON of any shape, and page-shaped deliveries with known item counts.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9_./ -]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("message".to_owned()),
                    Just("id".to_owned()),
                    Just("sender".to_owned()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_and_json_never_panic_and_yield_at_least_one_event(body in prop::collection::vec(any::<u8>(), 0..256), v in arb_json()) {
        prop_assert!(!split(&body, now()).is_empty());
        prop_assert!(!split_json(&v).is_empty());
    }

    #[test]
    fn every_item_of_a_page_delivery_yields_exactly_one_event(
        entries in prop::collection::vec(
            (prop::collection::vec(arb_json(), 0..4), prop::collection::vec(arb_json(), 0..3), prop::collection::vec(arb_json(), 0..3)),
            1..4)
    ) {
        let mut expected = 0;
        let entry_values: Vec<Value> = entries.into_iter().map(|(m, s, c)| {
            expected += m.len() + s.len() + c.len();
            json!({"id": PAGE, "time": 1, "messaging": m, "standby": s, "changes": c})
        }).collect();
        let events = split_json(&json!({"object": "page", "entry": entry_values}));
        prop_assert_eq!(events.len(), expected);
    }
}

/// Top-level keys of generated messaging items: the hashed types, an unknown one,
/// and the parties. (Not `message`, `delivery`, `read`: their ids come from a field.)
const ITEM_KEYS: &[&str] = &[
    "sender",
    "recipient",
    "timestamp",
    "postback",
    "reaction",
    "optin",
    "referral",
    "message_edit",
    "account_linking",
];

fn item_keys_are_hashed(m: &Model) -> bool {
    let Model::Obj(members) = m else { return true };
    members.iter().all(|(k, _)| {
        !["message", "delivery", "read"].contains(&String::from_utf16_lossy(k).as_str())
    })
}

/// A generated text without the whitespace around it, as a delivery's slice holds it.
fn json_trim(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r'])
}

/// Items, some sent twice as the same bytes and some as another text of the same value.
fn arb_items() -> impl Strategy<Value = Vec<(Model, String)>> {
    let item = testing::arb_object(ITEM_KEYS)
        .prop_filter("hashed types", |(m, _)| item_keys_are_hashed(m));
    (prop::collection::vec(item, 1..8), any::<u64>()).prop_map(|(mut items, seed)| {
        let n = items.len();
        let (first, other) = (items[0].clone(), items[n - 1].0.clone());
        items.push(first);
        let text = other.to_text(seed);
        items.push((other, text));
        items
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_item_has_its_own_event_and_id_and_keeps_its_bytes(items in arb_items()) {
        let texts: Vec<&str> = items.iter().map(|(_, t)| t.as_str()).collect();
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":1,"messaging":[{}]}}]}}"#,
            texts.join(",")
        );
        let events = split(body.as_bytes(), now());
        prop_assert_eq!(events.len(), items.len());
        for (e, (_, text)) in events.iter().zip(&items) {
            prop_assert_eq!(e.data.get(), json_trim(text), "the item's slice of the body");
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                // What serde_json reads keeps the id it always had.
                let material = format!("{PAGE}\n{}", canonical_json(&v));
                prop_assert_eq!(e.id.as_str(), format!("{}:{}", e.event_type, sha256_hex(material.as_bytes())));
                prop_assert_eq!(Lenient::parse(text).unwrap().view().canonical(), canonical_json(&v));
            }
        }
        for (i, (a, _)) in items.iter().enumerate() {
            for (j, (b, _)) in items.iter().enumerate().skip(i + 1) {
                let same = a.normal() == b.normal();
                prop_assert_eq!(events[i].id == events[j].id, same, "items {} and {}: {} / {}", i, j, texts[i], texts[j]);
            }
        }
    }

    #[test]
    fn values_of_any_kind_in_any_list_never_panic_and_yield_one_event_each(
        lists in prop::collection::vec(prop::collection::vec(testing::arb_json(), 0..4), 3),
        entry_id in testing::arb_json(),
    ) {
        let text = |l: &Vec<(Model, String)>| l.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(",");
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":{},"time":1e400,"messaging":[{}],"standby":[{}],"changes":[{}]}}]}}"#,
            entry_id.1, text(&lists[0]), text(&lists[1]), text(&lists[2])
        );
        let events = split(body.as_bytes(), now());
        let sent: Vec<&str> = lists.iter().flatten().map(|(_, t)| json_trim(t)).collect();
        let data: Vec<&str> = events.iter().map(|e| e.data.get()).collect();
        prop_assert_eq!(data, sent);
    }
}
