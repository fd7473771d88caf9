//! `GET /api/conversations/{page_id}/{psid}/messages`.

use serde_json::{Value, json};

use super::{PAGE, echo, get_ok, now_ms, reaction, receipt, text, wait_for, webhook};
use crate::support::TestApp;

fn by_mid<'a>(messages: &'a Value, mid: &str) -> &'a Value {
    messages["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mid"] == mid)
        .unwrap_or_else(|| panic!("{mid} not in {messages}"))
}

#[tokio::test]
async fn messages_carry_reactions_edits_app_ids_and_delivery_and_read_marks() {
    // Arrange: a customer message, two replies from an app, reactions (one taken
    // back), an edit, and receipts covering the first reply (read) and both (delivered).
    let app = TestApp::spawn_with_pipeline().await;
    let t = now_ms() - 60_000;
    let path = format!("/api/conversations/{PAGE}/r1/messages");
    webhook(
        &app,
        PAGE,
        vec![
            text(PAGE, "r1", "m1", t, "Hello"),
            echo(PAGE, "r1", "m2", t + 1, "Hi!", 263902037430900),
            echo(PAGE, "r1", "m3", t + 10, "Anything else?", 263902037430900),
        ],
    )
    .await;
    wait_for(&app, &path, |b| {
        b["data"].as_array().is_some_and(|d| d.len() == 3)
    })
    .await;
    webhook(
        &app,
        PAGE,
        vec![
            reaction(PAGE, "r1", "r1", "m2", "react", "\u{2764}", t + 20),
            reaction(PAGE, "r1", PAGE, "m1", "react", "\u{1f44d}", t + 21),
            reaction(PAGE, "r1", "r1", "m3", "react", "\u{1f62e}", t + 22),
            json!({"sender": {"id": "r1"}, "recipient": {"id": PAGE}, "timestamp": t + 23,
               "message_edit": {"mid": "m1", "text": "Hello, edited", "num_edit": 1}}),
            receipt(PAGE, "r1", "delivery", t + 10),
            receipt(PAGE, "r1", "read", t + 5),
        ],
    )
    .await;
    webhook(
        &app,
        PAGE,
        vec![reaction(PAGE, "r1", "r1", "m2", "unreact", "", t + 30)],
    )
    .await;

    // Act
    let messages = wait_for(&app, &path, |b| {
        b["data"][0]["edited"] == 1
            && b["data"][1]["reactions"] == json!([])
            && b["data"][2]["delivered"] == true
    })
    .await;

    // Assert
    let m1 = by_mid(&messages, "m1");
    assert_eq!(
        *m1,
        json!({"mid": "m1", "direction": "in", "text": "Hello, edited", "attachments": null,
               "timestamp": chrono::DateTime::from_timestamp_millis(t).unwrap(),
               "source": "webhook", "app_id": null,
               "reactions": [{"reaction": "love", "emoji": "\u{1f44d}", "by": "page"}],
               "edited": 1, "delivered": null, "read": null})
    );
    let m2 = by_mid(&messages, "m2");
    assert_eq!(
        (
            &m2["direction"],
            &m2["app_id"],
            &m2["delivered"],
            &m2["read"]
        ),
        (
            &json!("out"),
            &json!("263902037430900"),
            &json!(true),
            &json!(true)
        )
    );
    let m3 = by_mid(&messages, "m3");
    assert_eq!(
        (&m3["delivered"], &m3["read"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(
        m3["reactions"],
        json!([{"reaction": "love", "emoji": "\u{1f62e}", "by": "customer"}])
    );
    let listed = get_ok(&app, &format!("/api/conversations/{PAGE}/r1")).await;
    assert_eq!(
        listed["unread"], 0,
        "the page replied after the customer's message"
    );
}

#[tokio::test]
async fn a_limit_1_walk_of_messages_is_chronological_and_takes_in_later_ones() {
    // Arrange
    let app = TestApp::spawn_with_pipeline().await;
    let t = now_ms() - 60_000;
    let path = format!("/api/conversations/{PAGE}/h1/messages");
    let items = (0..4)
        .map(|i| text(PAGE, "h1", &format!("h_{i}"), t + i * 1000, "x"))
        .collect();
    webhook(&app, PAGE, items).await;
    wait_for(&app, &path, |b| {
        b["data"].as_array().is_some_and(|d| d.len() == 4)
    })
    .await;

    // Act: a message arrives after the walk began.
    let mut seen = Vec::new();
    let mut next = format!("{path}?limit=1");
    loop {
        let page = get_ok(&app, &next).await;
        for m in page["data"].as_array().unwrap() {
            seen.push(m["mid"].as_str().unwrap().to_owned());
        }
        if seen.len() == 2 {
            webhook(&app, PAGE, vec![text(PAGE, "h1", "h_9", now_ms(), "late")]).await;
            wait_for(&app, &path, |b| {
                b["data"].as_array().is_some_and(|d| d.len() == 5)
            })
            .await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => next = format!("{path}?limit=1&cursor={c}"),
            None => break,
        }
    }

    // Assert
    assert_eq!(seen, ["h_0", "h_1", "h_2", "h_3", "h_9"]);
}
