//! Data that strict readers refuse, and tokens nested in page data: applied, never
//! a dead letter, and never written to a file (issue 15).

use pagesync_schema::{EventType, Source};
use serde_json::json;
use serde_json::value::RawValue;

use crate::support::{TestProjector, event, tree};

const PAGE: &str = "101";
const PSID: &str = "u1";
const T: i64 = 1_700_000_000_000;

/// An event whose `data` is the given raw JSON text.
fn raw(ty: EventType, id: &str, psid: Option<&str>, data: &str) -> pagesync_schema::Event {
    let mut e = event(ty, Source::Ingest, id, PAGE, psid, T, json!({}));
    e.data = RawValue::from_string(data.to_owned()).unwrap();
    e
}

/// The event a millisecond later (a change applies over an older snapshot only).
fn later(mut e: pagesync_schema::Event) -> pagesync_schema::Event {
    e.time += chrono::Duration::milliseconds(1);
    e
}

#[tokio::test]
async fn tokens_nested_in_snapshots_and_changes_never_reach_the_page_file_or_the_tables() {
    let p = TestProjector::new().await;
    let snapshot = event(
        EventType::PageSnapshot,
        Source::Poller,
        &format!("snapshot:{PAGE}:{T}"),
        PAGE,
        None,
        T,
        json!({"id": PAGE, "name": "Shop", "access_token": "EAAB-top",
               "page": {"id": PAGE, "access_token": "EAAB-nested"},
               "connected": [{"instagram": {"page_access_token": "EAAB-deep"}}]}),
    );
    let change = event(
        EventType::PageChange,
        Source::Ingest,
        "change:101:about:x",
        PAGE,
        None,
        T + 1,
        json!({"field": "about", "value": {"text": "hi", "token": "EAAB-change"}}),
    );
    let token_field = event(
        EventType::PageChange,
        Source::Ingest,
        "change:101:page_token:x",
        PAGE,
        None,
        T + 2,
        json!({"field": "page_token", "value": "EAAB-field"}),
    );
    p.publish(&[snapshot, change, token_field]).await;

    let report = p.drain().await;

    assert_eq!((report.messages, report.dead_letters), (3, 0));
    assert_eq!(
        p.page_file(PAGE).unwrap(),
        json!({"data": [{"id": PAGE, "name": "Shop", "page": {"id": PAGE},
                         "connected": [{"instagram": {}}], "about": {"text": "hi"}}]})
    );
    let rows = p.rows().await;
    let stored: Vec<&str> = rows.lines().filter(|l| l.starts_with("page_")).collect();
    assert!(stored.iter().all(|l| !l.contains("EAAB")), "{stored:#?}");
    for (path, bytes) in tree(p.data_dir()) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains("EAAB"),
            "{path:?}"
        );
    }
}

#[tokio::test]
async fn data_with_lone_surrogates_and_numbers_out_of_range_is_applied_not_dead_lettered() {
    let p = TestProjector::new().await;
    let message = format!(
        r#"{{"sender":{{"id":"{PSID}"}},"timestamp":{},"message":{{"mid":"m1","text":"hi \ud83d","attachments":[{{"type":"file","payload":{{"url":"x\udc00","size":1e400}}}}]}}}}"#,
        T + 1
    );
    let events = [
        raw(EventType::Message, "m1", Some(PSID), &message),
        raw(
            EventType::Reaction,
            "reaction:1",
            Some(PSID),
            r#"{"timestamp":1e400,"reaction":{"mid":"m1","reaction":"love","emoji":"\ud83d"}}"#,
        ),
        raw(
            EventType::PageSnapshot,
            &format!("snapshot:{PAGE}:{T}"),
            None,
            r#"{"id":"101","name":"Caf\u00e9 \ud83d","fan_count":1e400}"#,
        ),
        later(raw(
            EventType::PageChange,
            "change:101:about:y",
            None,
            r#"{"field":"about","value":"a\u0000b \udc00"}"#,
        )),
        raw(
            EventType::Unknown,
            "unknown:1",
            None,
            r#"{"x":"\ud800","n":-1e999}"#,
        ),
    ];
    p.publish(&events).await;

    let report = p.drain().await;

    assert_eq!((report.messages, report.dead_letters), (5, 0));
    let client = p.db.client().await;
    let row = client
        .query_one(
            "SELECT text, attachments::text, data FROM conversation_events WHERE item_id = 'm1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("hi \u{fffd}")
    );
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("[{\"type\": \"file\", \"payload\": {\"url\": \"x\u{fffd}\", \"size\": \"1e400\"}}]")
    );
    assert_eq!(row.get::<_, String>(2), message, "data is stored verbatim");
    assert_eq!(
        p.count("SELECT count(*) FROM reactions WHERE emoji = E'\\uFFFD'")
            .await,
        1
    );
    let file = std::fs::read_to_string(
        p.data_dir()
            .join(format!("facebook/{PAGE}/conversations/{PSID}.json")),
    )
    .unwrap();
    assert!(
        file.contains(&message),
        "the file holds the item as sent: {file}"
    );
    assert_eq!(
        p.page_file(PAGE).unwrap(),
        json!({"data": [{"id": PAGE, "name": "Café \u{fffd}", "fan_count": "1e400", "about": "ab \u{fffd}"}]})
    );
}
