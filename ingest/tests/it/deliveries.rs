use std::collections::BTreeMap;

use pagesync_schema::canonical::sha256_hex;
use reqwest::StatusCode;
use serde_json::Value;

use crate::app::{PAGE, PSID, TestApp, message_delivery, metric_value};

const EVERY_TYPE: &str = include_str!("../fixtures/every_type.json");
const INSTAGRAM: &str = include_str!("../fixtures/instagram.json");

#[tokio::test]
async fn every_item_type_lands_on_its_subject_with_its_id_and_envelope() {
    let app = TestApp::spawn().await;
    let res = app.post_signed(EVERY_TYPE).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "EVENT_RECEIVED");

    let stored = app.nats.messages().await;
    let by_type: BTreeMap<String, Vec<&pagesync_testkit::nats::StoredMessage>> =
        stored.iter().fold(BTreeMap::new(), |mut m, msg| {
            let ty = msg.json()["type"].as_str().unwrap().to_owned();
            m.entry(ty).or_default().push(msg);
            m
        });
    let count = |t: &str| by_type.get(t).map_or(0, Vec::len);
    assert_eq!(stored.len(), 14, "{by_type:#?}");
    assert_eq!(count("facebook.message"), 3);
    for t in [
        "message_echo",
        "postback",
        "delivery",
        "read",
        "reaction",
        "message_edit",
        "optin",
        "referral",
        "standby",
    ] {
        assert_eq!(count(&format!("facebook.{t}")), 1, "{t}");
    }
    assert_eq!(count("facebook.page_change"), 2);

    let prefix = app.nats.prefix.to_string();
    for msg in &stored {
        let env = msg.json();
        let ty = on_account_subject(msg, &prefix, PAGE, "messenger");
        assert_eq!(
            msg.msg_id.as_deref(),
            Some(format!("pagesync/ingest:{}", env["id"].as_str().unwrap()).as_str())
        );
        for field in [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "pageid",
            "receivedat",
            "data",
        ] {
            assert!(env.get(field).is_some(), "{field} missing in {env}");
        }
        assert_eq!(env["specversion"], "1.0");
        assert_eq!(env["source"], "pagesync/ingest");
        assert_eq!(env["pageid"], PAGE);
        assert_eq!(env["datacontenttype"], "application/json");
        if ty == "page_change" {
            assert!(env.get("psid").is_none());
        } else {
            assert_eq!(env["psid"], PSID, "{ty}");
        }
    }

    let ids: Vec<&str> = stored.iter().filter_map(|m| m.msg_id.as_deref()).collect();
    for mid in [
        "m_text",
        "mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c",
        "m_quick",
        "m_echo",
    ] {
        assert!(
            ids.contains(&format!("pagesync/ingest:{mid}").as_str()),
            "{mid}"
        );
    }
    assert!(
        ids.contains(&format!("pagesync/ingest:delivery:{PAGE}:{PSID}:1458668856253").as_str())
    );
    assert!(ids.contains(&format!("pagesync/ingest:read:{PAGE}:{PSID}:1458668856253").as_str()));

    let delivery = by_type["facebook.delivery"][0].json();
    assert_eq!(
        delivery["time"], "2016-03-22T17:47:36.253Z",
        "a delivery's time is its watermark"
    );
    let change = by_type["facebook.page_change"][0].json();
    let name_hash = sha256_hex(b"\"Cisco Dog Page\"");
    assert_eq!(
        change["id"],
        format!("change:{PAGE}:name:1520383571000:{name_hash}")
    );
    assert_eq!(
        change["time"], "2018-03-07T00:46:11.000Z",
        "changes carry seconds"
    );
    let echo = by_type["facebook.message_echo"][0].json();
    assert_eq!(
        echo["data"]["message"]["app_id"],
        Value::from(1517776481860111_i64)
    );
    let text = by_type["facebook.message"]
        .iter()
        .map(|m| m.json())
        .find(|e| e["id"] == "m_text")
        .unwrap();
    assert_eq!(text["time"], "2016-03-23T00:25:52.478Z");
    assert_eq!(
        text["data"]["message"]["text"],
        "hello, world! äöå https://youtu.be/bbo_fZAjIhg"
    );

    let metrics = app.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "pagesync_ingest_events_total",
            "type=\"page_change\""
        ) >= 2.0
    );
    assert!(
        metric_value(
            &metrics,
            "pagesync_ingest_deliveries_total",
            "outcome=\"accepted\""
        ) >= 1.0
    );
}

#[tokio::test]
async fn the_same_delivery_posted_twice_is_stored_once() {
    let app = TestApp::spawn().await;
    for _ in 0..2 {
        assert_eq!(app.post_signed(EVERY_TYPE).await.status(), StatusCode::OK);
    }
    assert_eq!(
        app.post_signed(message_delivery("m_once")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.post_signed(message_delivery("m_once")).await.status(),
        StatusCode::OK
    );

    let stored = app.nats.messages().await;
    assert_eq!(stored.len(), 15);
    let mut ids: Vec<_> = stored.iter().map(|m| m.msg_id.clone().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 15, "every id once");
    let metrics = app.metrics().await;
    assert!(metric_value(&metrics, "pagesync_ingest_duplicates_total", "") >= 15.0);
}

/// Checks that `msg` is on its account's subject with that platform; its type.
fn on_account_subject(
    msg: &pagesync_testkit::nats::StoredMessage,
    prefix: &str,
    account: &str,
    platform: &str,
) -> String {
    let env = msg.json();
    let ty = env["type"]
        .as_str()
        .unwrap()
        .trim_start_matches("facebook.");
    assert_eq!(msg.subject, format!("{prefix}.{account}.{ty}"));
    assert_eq!(
        (env["pageid"].as_str(), env["platform"].as_str()),
        (Some(account), Some(platform))
    );
    ty.to_owned()
}

#[tokio::test]
async fn an_instagram_delivery_lands_on_the_accounts_subjects_as_instagram_events() {
    let app = TestApp::spawn().await;
    let res = app.post_signed(INSTAGRAM).await;
    assert_eq!(res.status(), StatusCode::OK);

    let stored = app.nats.messages().await;
    let prefix = app.nats.prefix.to_string();
    let account = "17841405822304914";
    assert_eq!(stored.len(), 14);
    let mut types = Vec::new();
    for msg in &stored {
        types.push(on_account_subject(msg, &prefix, account, "instagram"));
    }
    types.sort();
    types.dedup();
    assert_eq!(
        types,
        [
            "message",
            "message_echo",
            "message_edit",
            "postback",
            "reaction",
            "read",
            "referral",
            "unknown"
        ]
    );
}

#[tokio::test]
async fn unparsed_unknown_and_invalid_deliveries_are_kept_not_dropped() {
    let app = TestApp::spawn().await;
    let bodies: [&[u8]; 5] = [
        b"this is not json",
        &[0xff, 0x00, 0xfe],
        br#"{"object":"user","entry":[{"id":"1","time":1,"messaging":[]}]}"#,
        br#"{"object":"page","entry":[{"id":"101","time":1,"messaging":[{"sender":{"id":"9"},"recipient":{"id":"101"},"policy_enforcement":{"action":"block"}}]}]}"#,
        br#"{"object":"page","entry":[{"id":"../../etc","time":1,"messaging":[{"sender":{"id":"9"},"recipient":{"id":"x"},"message":{"mid":"m_evil"}}]}]}"#,
    ];
    for body in bodies {
        let res = app.post_signed(body.to_vec()).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let stored = app.nats.messages().await;
    let prefix = app.nats.prefix.to_string();
    let summary: Vec<(String, String)> = stored
        .iter()
        .map(|m| {
            (
                m.subject.clone(),
                m.json()["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                format!("{prefix}._.unparsed"),
                "facebook.unparsed".to_owned()
            ),
            (
                format!("{prefix}._.unparsed"),
                "facebook.unparsed".to_owned()
            ),
            (format!("{prefix}._.unknown"), "facebook.unknown".to_owned()),
            (
                format!("{prefix}.101.unknown"),
                "facebook.unknown".to_owned()
            ),
            (format!("{prefix}._.invalid"), "facebook.invalid".to_owned()),
        ]
    );
    let unparsed = stored[0].json();
    assert_eq!(
        unparsed["data"],
        serde_json::json!({"body": "this is not json", "encoding": "utf8"})
    );
    assert_eq!(
        unparsed["id"],
        format!("unparsed:{}", sha256_hex(b"this is not json"))
    );
    assert_eq!(stored[1].json()["data"]["encoding"], "base64");
    assert_eq!(stored[4].json()["pageid"], "_");
    assert_eq!(
        stored[4].json()["data"]["message"]["mid"],
        "m_evil",
        "the item is kept whole"
    );
}
