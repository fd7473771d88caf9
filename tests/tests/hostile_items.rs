//! Items that strict JSON readers refuse (lone surrogates, numbers out of range,
//! duplicate keys, ids with escapes) go through ingest and the projector like any
//! other: one event each, with its own id, `data` byte for byte as sent, applied
//! and never dead-lettered (issue 15, contract §3–§4).

mod common;

use common::{Pipeline, walk};
use pagesync_graph::GraphMessage;
use pagesync_schema::{Event, PageId, Publisher};
use serde::Deserialize;
use serde_json::value::RawValue;

const PAGE: &str = "424242";
const PSID: &str = "999001";
const T: i64 = 1_763_700_000_000;

/// A customer's messaging item as raw JSON text, `rest` being the members after `timestamp`.
fn item(psid: &str, ts: i64, rest: &str) -> String {
    format!(
        r#"{{"sender":{{"id":"{psid}"}},"recipient":{{"id":"{PAGE}"}},"timestamp":{ts},{rest}}}"#
    )
}

/// A page delivery of one entry `id` carrying `items` in `messaging`, as raw text.
fn delivery_of(page: &str, items: &[String]) -> String {
    format!(
        r#"{{"object":"page","entry":[{{"id":"{page}","time":{T},"messaging":[{}]}}]}}"#,
        items.join(",")
    )
}

/// The envelope fields a test looks at, read without judging `data`'s escapes.
#[derive(Deserialize)]
struct Envelope<'a> {
    id: String,
    #[serde(rename = "type")]
    ty: String,
    pageid: String,
    psid: Option<String>,
    time: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

struct Stored {
    subject: String,
    id: String,
    ty: String,
    pageid: String,
    psid: Option<String>,
    time: String,
    data: String,
}

async fn stored(p: &Pipeline) -> Vec<Stored> {
    p.nats
        .messages()
        .await
        .into_iter()
        .map(|m| {
            let e: Envelope<'_> = serde_json::from_slice(&m.payload).expect("an envelope");
            Stored {
                subject: m.subject.clone(),
                id: e.id,
                ty: e.ty,
                pageid: e.pageid,
                psid: e.psid,
                time: e.time,
                data: e.data.get().to_owned(),
            }
        })
        .collect()
}

async fn texts(p: &Pipeline) -> Vec<(String, Option<String>)> {
    p.db.client()
        .await
        .query("SELECT mid, text FROM messages ORDER BY mid", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The conversation file of (PAGE, PSID) as the projector writes it: one item per line.
fn conversation_file_of(items: &[&String]) -> Vec<u8> {
    let lines: Vec<&str> = items.iter().map(|s| s.as_str()).collect();
    format!("[\n{}\n]\n", lines.join(",\n")).into_bytes()
}

fn conversation_file(p: &Pipeline) -> Vec<u8> {
    p.file(&format!("facebook/{PAGE}/conversations/{PSID}.json"))
        .expect("the conversation file is written")
}

#[tokio::test]
async fn texts_cut_mid_emoji_give_one_message_each_kept_byte_for_byte() {
    let p = Pipeline::start().await;
    let items = [
        item(
            PSID,
            T + 1,
            r#""message":{"mid":"m_s1","text":"hello \ud83d"}"#,
        ),
        item(
            PSID,
            T + 2,
            r#""message":{"mid":"m_s2","text":"bye \udc00 x"}"#,
        ),
        item(
            PSID,
            T + 3,
            r#""message":{"mid":"m_s3","text":"ok \ud83d\ude00"}"#,
        ),
    ];

    assert_eq!(p.post_signed(delivery_of(PAGE, &items)).await, 200);

    let events = stored(&p).await;
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["m_s1", "m_s2", "m_s3"]);
    for (e, item) in events.iter().zip(&items) {
        assert_eq!(e.ty, "facebook.message");
        assert_eq!(e.data, *item, "data is the item exactly as sent");
    }
    let report = p.drain().await;
    assert_eq!((report.messages, report.dead_letters), (3, 0));
    assert_eq!(
        texts(&p).await,
        [
            ("m_s1".into(), Some("hello \u{fffd}".into())),
            ("m_s2".into(), Some("bye \u{fffd} x".into())),
            ("m_s3".into(), Some("ok \u{1f600}".into())),
        ]
    );
    let all: Vec<&String> = items.iter().collect();
    assert_eq!(conversation_file(&p), conversation_file_of(&all));
}

#[tokio::test]
async fn numbers_out_of_range_give_one_event_each_and_are_applied() {
    let p = Pipeline::start().await;
    let digits = "7".repeat(400);
    let items = [
        item(
            PSID,
            T + 1,
            r#""message":{"mid":"m_n1","text":"a","nlp":{"score":1e400}}"#,
        ),
        item(
            PSID,
            T + 2,
            &format!(r#""message":{{"mid":"m_n2","text":"b","nlp":{{"score":{digits}}}}}"#),
        ),
        item(
            PSID,
            T + 3,
            r#""postback":{"title":"t","payload":"p","n":1e400}"#,
        ),
        item(
            PSID,
            T + 3,
            r#""postback":{"title":"t","payload":"p","n":-1e400}"#,
        ),
        item(
            PSID,
            T + 3,
            &format!(r#""postback":{{"title":"t","payload":"p","n":{digits}}}"#),
        ),
    ];

    assert_eq!(p.post_signed(delivery_of(PAGE, &items)).await, 200);

    let events = stored(&p).await;
    assert_eq!(events.len(), 5, "one event per item");
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(&ids[..2], ["m_n1", "m_n2"]);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every item has its own id");
    for (e, item) in events.iter().zip(&items) {
        assert_eq!(e.data, *item);
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| e.ty == "facebook.postback")
            .count(),
        3
    );
    let report = p.drain().await;
    assert_eq!((report.messages, report.dead_letters), (5, 0));
    assert_eq!(texts(&p).await.len(), 2);
    let file = String::from_utf8(conversation_file(&p)).unwrap();
    assert!(items.iter().all(|i| file.contains(i.as_str())), "{file}");
}

#[tokio::test]
async fn duplicate_keys_are_read_as_their_last_value_and_kept_as_sent() {
    let p = Pipeline::start().await;
    let items = [item(
        PSID,
        T + 1,
        r#""message":{"mid":"m_d1","text":"first","text":"second \ud800"}"#,
    )];

    assert_eq!(p.post_signed(delivery_of(PAGE, &items)).await, 200);

    let events = stored(&p).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].id.as_str(), events[0].data.as_str()),
        ("m_d1", items[0].as_str())
    );
    assert_eq!(p.drain().await.dead_letters, 0);
    assert_eq!(
        texts(&p).await,
        [("m_d1".into(), Some("second \u{fffd}".into()))]
    );
}

#[tokio::test]
async fn mids_with_quotes_and_backslashes_are_applied_under_their_own_mid() {
    let p = Pipeline::start().await;
    let items = [
        item(PSID, T + 1, r#""message":{"mid":"m_q\"uote","text":"one"}"#),
        item(
            PSID,
            T + 2,
            r#""message":{"mid":"m_back\\slash","text":"two"}"#,
        ),
    ];

    assert_eq!(p.post_signed(delivery_of(PAGE, &items)).await, 200);

    let events = stored(&p).await;
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["m_q\"uote", "m_back\\slash"]);
    let report = p.drain().await;
    assert_eq!((report.messages, report.dead_letters), (2, 0));
    assert_eq!(p.db.count("SELECT count(*) FROM dead_letters").await, 0);
    assert_eq!(
        texts(&p).await,
        [
            ("m_back\\slash".into(), Some("two".into())),
            ("m_q\"uote".into(), Some("one".into())),
        ]
    );
    let all: Vec<&String> = items.iter().collect();
    assert_eq!(conversation_file(&p), conversation_file_of(&all));

    // The poller's copies of these messages get the same ids, so they converge.
    let page = PageId::parse(PAGE).unwrap();
    let polled: Vec<Event> = ["m_q\"uote", "m_back\\slash"]
        .iter()
        .map(|mid| {
            let m: GraphMessage = serde_json::from_value(serde_json::json!({
                "id": mid, "message": "polled", "created_time": "2025-11-21T04:40:00+0000",
                "from": {"id": PSID}, "to": {"data": [{"id": PAGE}]}}))
            .unwrap();
            pagesync_poller::events::message_event(&page, &m, chrono::Utc::now()).unwrap()
        })
        .collect();
    assert_eq!(polled[0].id.as_str(), ids[0]);
    assert_eq!(polled[1].id.as_str(), ids[1]);
    Publisher::new(p.nats.js.clone(), p.nats.prefix.clone())
        .publish_all(&polled, None)
        .await
        .unwrap();
    let report = p.drain().await;
    assert_eq!((report.messages, report.dead_letters), (2, 0));
    assert_eq!(texts(&p).await.len(), 2, "one message per mid");
    assert_eq!(
        conversation_file(&p),
        conversation_file_of(&all),
        "the webhook copies win"
    );
}

#[tokio::test]
async fn a_psid_in_non_ascii_letters_is_an_invalid_event_of_its_page_and_not_a_dead_letter() {
    let p = Pipeline::start().await;
    let items = [
        // Facebook escapes non-ASCII letters; a raw one is read the same way.
        item(
            r"\u00e4\u00f6",
            T + 1,
            r#""message":{"mid":"m_a1","text":"hej"}"#,
        ),
        item("äö", T + 2, r#""message":{"mid":"m_a2","text":"hej"}"#),
        // A letter outside the BMP is a surrogate pair; cut, it used to be a dead letter.
        item(
            r"\ud835\udc00",
            T + 3,
            r#""message":{"mid":"m_a3","text":"hej"}"#,
        ),
        item(
            r"ab\ud835",
            T + 4,
            r#""message":{"mid":"m_a4","text":"hej"}"#,
        ),
    ];

    assert_eq!(p.post_signed(delivery_of(PAGE, &items)).await, 200);

    let events = stored(&p).await;
    assert_eq!(events.len(), 4);
    let prefix = p.nats.prefix.to_string();
    for (e, item) in events.iter().zip(&items) {
        assert_eq!(e.ty, "facebook.invalid");
        assert_eq!(e.subject, format!("{prefix}.{PAGE}.invalid"));
        assert_eq!(e.pageid, PAGE);
        assert_eq!(e.psid, None);
        assert_eq!(e.data, *item);
    }
    let report = p.drain().await;
    assert_eq!((report.messages, report.dead_letters), (4, 0));
    assert_eq!(
        p.db.count("SELECT count(*) FROM applied_events WHERE event_type = 'invalid'")
            .await,
        4
    );
    assert!(
        walk(p.dir.path()).is_empty(),
        "invalid items are not projected"
    );
}

#[tokio::test]
async fn an_invalid_item_under_a_valid_page_is_published_on_that_pages_subject() {
    let p = Pipeline::start().await;
    let items = [
        item("a/b", T + 1, r#""message":{"mid":"m_i1","text":"x"}"#),
        format!(
            r#"{{"recipient":{{"id":"{PAGE}"}},"timestamp":{},"message":{{"mid":"m_i2"}}}}"#,
            T + 2
        ),
    ];

    assert_eq!(p.post_signed(delivery_of(PAGE, &items)).await, 200);

    let events = stored(&p).await;
    let prefix = p.nats.prefix.to_string();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.ty, "facebook.invalid");
        assert_eq!(e.subject, format!("{prefix}.{PAGE}.invalid"));
        assert_eq!(e.pageid, PAGE);
        assert_eq!(e.psid, None);
    }
    assert_eq!(p.drain().await.dead_letters, 0);
}

#[tokio::test]
async fn an_entry_whose_id_is_underscore_is_not_a_page() {
    let p = Pipeline::start().await;
    let items = [item(PSID, T + 1, r#""message":{"mid":"m_u1","text":"x"}"#)];

    assert_eq!(p.post_signed(delivery_of("_", &items)).await, 200);

    let events = stored(&p).await;
    let prefix = p.nats.prefix.to_string();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].ty, "facebook.invalid");
    assert_eq!(events[0].subject, format!("{prefix}._.invalid"));
    assert_eq!(events[0].pageid, "_");
    assert_eq!(events[0].time, "2025-11-21T04:40:00.001Z");
    assert_eq!(p.drain().await.dead_letters, 0);
    assert_eq!(p.db.count("SELECT count(*) FROM pages").await, 0);
    assert!(walk(p.dir.path()).is_empty(), "{:?}", walk(p.dir.path()));
}
