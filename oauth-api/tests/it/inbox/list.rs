//! `GET /api/conversations` and `GET /api/conversations/{page_id}/{psid}`.

use std::collections::BTreeSet;

use pagesync_fake_graph::FakeMessage;
use pagesync_schema::{Event, EventType, PageId, Psid, Publisher, Source, event_id};
use reqwest::Method;
use serde_json::json;

use super::{PAGE, echo, get_ok, listed, now_ms, psids, text, wait_for, webhook};
use crate::support::{Auth, FakePage, PAGE_A, PAGE_B, TestApp};

/// Publishes a `conversation_status` event, as the status route does.
async fn close(app: &TestApp, psid: &str, at: i64) {
    let (page, customer) = (PageId::parse(PAGE).unwrap(), Psid::parse(psid).unwrap());
    let data = json!({"psid": psid, "status": "closed", "at": at});
    let event = Event {
        id: event_id::for_status(&page, &customer, at),
        event_type: EventType::ConversationStatus,
        source: Source::OauthApi,
        page_id: Some(page),
        psid: Some(customer),
        platform: pagesync_schema::Platform::Messenger,
        time: chrono::DateTime::from_timestamp_millis(at).unwrap(),
        received_at: chrono::Utc::now(),
        data: serde_json::value::to_raw_value(&data).unwrap(),
    };
    Publisher::new(app.nats.js.clone(), app.nats.prefix.clone())
        .publish_all(&[event], None)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_list_is_newest_first_with_every_field_and_its_filters_narrow_it() {
    // Arrange: three conversations; the newest answered by the page, the oldest closed.
    let app = TestApp::spawn_with_pipeline().await;
    let t = now_ms();
    webhook(&app, PAGE, vec![text(PAGE, "c1", "m_c1", t, "Hello there")]).await;
    webhook(
        &app,
        PAGE,
        vec![text(PAGE, "c2", "m_c2", t + 1000, "Where is my ORDER?")],
    )
    .await;
    webhook(
        &app,
        PAGE,
        vec![text(PAGE, "c3", "m_c3", t + 2000, "Refund please")],
    )
    .await;
    webhook(
        &app,
        PAGE,
        vec![echo(PAGE, "c3", "m_c3b", t + 3000, "Done", 42)],
    )
    .await;
    close(&app, "c1", t + 500).await;

    // Act
    let list = wait_for(&app, "/api/conversations", |b| {
        psids(b) == ["c3", "c2", "c1"] && b["data"][2]["status"] == "closed"
    })
    .await;

    // Assert
    let newest = &list["data"][0];
    let closes =
        chrono::DateTime::from_timestamp_millis(t + 2000).unwrap() + chrono::Duration::hours(24);
    assert_eq!(
        *newest,
        json!({"page_id": PAGE, "psid": "c3", "status": "open",
               "last_message_at": chrono::DateTime::from_timestamp_millis(t + 3000).unwrap(),
               "last_message_text": "Done", "message_count": 2, "unread": 0,
               "platform": "messenger", "customer_name": null,
               "reply_window": {"kind": "response", "closes_at": closes}})
    );
    assert_eq!(list["data"][1]["unread"], 1);
    assert!(list["next_cursor"].is_null());
    assert_eq!(listed(&app, "status=closed").await, ["c1"]);
    assert_eq!(listed(&app, "status=open").await, ["c3", "c2"]);
    assert_eq!(listed(&app, "unread=true").await, ["c2", "c1"]);
    assert_eq!(
        listed(&app, "platform=instagram").await,
        Vec::<String>::new()
    );
    assert_eq!(
        listed(&app, &format!("page_id={}", PAGE_B.0)).await,
        Vec::<String>::new()
    );
    assert_eq!(listed(&app, "q=order").await, ["c2"]);
    assert_eq!(listed(&app, "q=REFUND").await, ["c3"]);
    assert_eq!(
        listed(&app, "q=%25").await,
        Vec::<String>::new(),
        "% matches itself"
    );
    let one = get_ok(&app, &format!("/api/conversations/{PAGE}/c3")).await;
    assert_eq!(one, *newest);
}

#[tokio::test]
async fn a_limit_1_walk_visits_every_unchanged_conversation_once_while_messages_arrive() {
    // Arrange: five conversations, w4 the newest.
    let app = TestApp::spawn_with_pipeline().await;
    let t = now_ms() - 60_000;
    let items = (0..5)
        .map(|i| {
            text(
                PAGE,
                &format!("w{i}"),
                &format!("m_w{i}"),
                t + i * 1000,
                "hi",
            )
        })
        .collect();
    webhook(&app, PAGE, items).await;
    wait_for(&app, "/api/conversations", |b| psids(b).len() == 5).await;

    // Act: walk one at a time; after two pages, a visited (w4) and an unvisited
    // (w0) conversation get a new message.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/conversations?limit=1&cursor={c}"),
            None => "/api/conversations?limit=1".to_owned(),
        };
        let page = get_ok(&app, &path).await;
        seen.extend(psids(&page));
        if seen.len() == 2 {
            let now = now_ms();
            webhook(&app, PAGE, vec![text(PAGE, "w4", "m_w4b", now, "again")]).await;
            webhook(
                &app,
                PAGE,
                vec![text(PAGE, "w0", "m_w0b", now + 1, "again")],
            )
            .await;
            wait_for(&app, "/api/conversations?limit=2", |b| {
                psids(b) == ["w0", "w4"]
            })
            .await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }

    // Assert: no repeat; every conversation that did not change was visited.
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a conversation came twice: {seen:?}"
    );
    for psid in ["w4", "w3", "w2", "w1"] {
        assert!(seen.iter().any(|s| s == psid), "{psid} skipped: {seen:?}");
    }
}

#[tokio::test]
async fn bad_filters_cursors_and_missing_credentials_are_refused_in_the_json_error_shape() {
    let app = TestApp::spawn().await;
    for q in [
        "status=shut",
        "limit=0",
        "limit=101",
        "unread=yes",
        "platform=sms",
        "cursor=bm9wZQ",
    ] {
        let (status, body) = app
            .api(
                Method::GET,
                &format!("/api/conversations?{q}"),
                Auth::Operator,
                None,
            )
            .await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
    let (status, body) = app
        .api(
            Method::GET,
            &format!("/api/conversations/{PAGE}/u1/messages?cursor=x"),
            Auth::Operator,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_cursor"))
    );
    for path in [
        "/api/conversations",
        "/api/conversations/1/2",
        "/api/conversations/1/2/messages",
        "/api/events",
    ] {
        let (status, body) = app.api(Method::GET, path, Auth::None, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
    }
}

/// Connects `page` through Facebook login for a new user, the page having one
/// conversation with `psid` for the connect's poll to read; returns the session cookie.
async fn connect_with_conversation(
    app: &TestApp,
    user: &str,
    page: FakePage,
    psid: &str,
) -> String {
    let code = app.facebook_user(user, &[page]);
    let created = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mid = format!("m_{psid}");
    app.fake
        .add_message(page.0, psid, FakeMessage::customer(&mid, "hi", created));
    let (pending, state, _) = app.login(None).await;
    let (status, body, set) = app.callback_setting(Some(&pending), &code, &state).await;
    assert_eq!(status, 200, "{body}");
    set.unwrap_or(pending)
}

#[tokio::test]
async fn another_users_conversations_are_404_and_names_come_from_the_poll() {
    // Arrange: two users, each with a page whose conversation the poll reads.
    let app = TestApp::spawn_with_pipeline().await;
    let ann = connect_with_conversation(&app, "ann", PAGE_A, "ann_c").await;
    let bob = connect_with_conversation(&app, "bob", PAGE_B, "bob_c").await;

    // Act
    let named = wait_for(
        &app,
        &format!("/api/conversations/{}/ann_c", PAGE_A.0),
        |b| b["customer_name"] == "Customer ann_c",
    )
    .await;
    // Bob's conversation is projected too before anyone asks for it.
    wait_for(
        &app,
        &format!("/api/conversations/{}/bob_c/messages", PAGE_B.0),
        |b| b["data"].as_array().is_some_and(|d| !d.is_empty()),
    )
    .await;
    let (_, anns) = app
        .api(
            Method::GET,
            "/api/conversations?q=customer",
            Auth::Session(&ann),
            None,
        )
        .await;

    // Assert
    assert_eq!(named["message_count"], 1);
    assert_eq!(
        psids(&anns),
        ["ann_c"],
        "q matches the name, only ann's own"
    );
    for path in [
        format!("/api/conversations/{}/bob_c", PAGE_B.0),
        format!("/api/conversations/{}/bob_c/messages", PAGE_B.0),
    ] {
        let (status, body) = app.api(Method::GET, &path, Auth::Session(&ann), None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
        let (status, _) = app.api(Method::GET, &path, Auth::Session(&bob), None).await;
        assert_eq!(status, 200, "{path}");
    }
    let (_, own) = app
        .api(
            Method::GET,
            &format!("/api/conversations?page_id={}", PAGE_B.0),
            Auth::Session(&ann),
            None,
        )
        .await;
    assert_eq!(psids(&own), Vec::<String>::new());
}
