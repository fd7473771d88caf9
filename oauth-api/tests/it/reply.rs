//! Replies through the Send API: the window, the request Facebook sees, the echo
//! event, the projection, Facebook's refusals and outages, and bad requests.

use chrono::{Duration, Utc};
use pagesync_fake_graph::{FakeGraph, Fault, Match};
use pagesync_schema::{EventType, Source};
use reqwest::Method;
use serde_json::{Value, json};

use crate::inbox_write_support::{
    CUSTOMER, connect_by_hand, customer_writes, echo_webhook, reply, send_calls, wait_for,
};
use crate::support::{Auth, PAGE_A, PAGE_B, TestApp};

/// A pipeline, PAGE_A connected, and the customer's last message `ago`.
async fn conversation(ago: Duration, human_agent: bool) -> TestApp {
    let t =
        TestApp::spawn_with_pipeline_configured(|c| c.messenger_human_agent = human_agent).await;
    connect_by_hand(&t, PAGE_A).await;
    customer_writes(&t, PAGE_A.0, CUSTOMER, "m_in_1", Utc::now() - ago).await;
    t
}

/// The reply's `message_echo` event in the stream.
async fn the_echo(t: &TestApp) -> pagesync_schema::Event {
    t.nats
        .events()
        .await
        .into_iter()
        .find(|e| e.event_type == EventType::MessageEcho)
        .expect("the echo is in the stream")
}

fn text(s: &str) -> Value {
    json!({ "text": s })
}

#[tokio::test]
async fn a_reply_within_a_day_is_a_response_echoed_and_stored_once_with_facebooks_echo() {
    let t = conversation(Duration::hours(1), false).await;

    let (status, body, _) = reply(
        &t,
        PAGE_A.0,
        CUSTOMER,
        None,
        &text("Woof, how can we help?"),
    )
    .await;

    assert_eq!(status, 201, "{body}");
    let mid = body["mid"].as_str().unwrap().to_owned();
    let sent = t.fake.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].page_id, PAGE_A.0);
    assert_eq!(sent[0].psid, CUSTOMER);
    assert_eq!(sent[0].text, "Woof, how can we help?");
    assert_eq!(sent[0].messaging_type, "RESPONSE");
    assert_eq!(sent[0].tag, None);
    assert_eq!(sent[0].message_id, mid);

    let echo = the_echo(&t).await;
    assert_eq!(echo.id.as_str(), mid);
    assert_eq!(echo.source, Source::OauthApi);
    assert_eq!(echo.page_id.as_ref().unwrap().as_str(), PAGE_A.0);
    assert_eq!(echo.psid.as_ref().unwrap().as_str(), CUSTOMER);
    assert_eq!(echo.platform.as_str(), "messenger");
    let data: Value = serde_json::from_str(echo.data.get()).unwrap();
    assert_eq!(data["sender"]["id"], PAGE_A.0);
    assert_eq!(data["recipient"]["id"], CUSTOMER);
    assert_eq!(data["message"]["is_echo"], true);
    assert_eq!(data["message"]["text"], "Woof, how can we help?");
    assert_eq!(data["message"]["app_id"].to_string(), FakeGraph::APP_ID);

    let ours = format!(
        "SELECT count(*) FROM messages WHERE mid = '{mid}' AND direction = 'out' AND source = 'send'"
    );
    wait_for(&t, &ours, 1).await;

    // Facebook's own echo of the same message, later, through the real ingest.
    echo_webhook(
        &t,
        PAGE_A.0,
        CUSTOMER,
        &mid,
        json!(1234567890u64),
        Utc::now(),
    )
    .await;
    let webhook_copy = format!(
        "SELECT count(*) FROM messages WHERE mid = '{mid}' AND direction = 'out' AND source = 'webhook'"
    );
    wait_for(&t, &webhook_copy, 1).await;
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM messages WHERE mid = '{mid}'"
        ))
        .await,
        1,
        "one record of the reply"
    );
    let logs = pagesync_testkit::logs::capture("trace").text();
    let stream = format!("{:?}", t.nats.events().await);
    for secret in t.secrets() {
        assert!(!logs.contains(&secret), "{secret:?} in the logs");
        assert!(!stream.contains(&secret), "{secret:?} in the stream");
    }
}

#[tokio::test]
async fn an_attachment_reply_is_sent_by_url_and_echoed_as_an_attachment() {
    let t = conversation(Duration::hours(2), false).await;
    let url = "https://cdn.example.test/menu.pdf";

    let (status, body, _) = reply(
        &t,
        PAGE_A.0,
        CUSTOMER,
        None,
        &json!({"attachment": {"type": "file", "url": url}}),
    )
    .await;

    assert_eq!(status, 201, "{body}");
    let sent = &t.fake.sent_messages()[0];
    assert_eq!(sent.attachment, Some(("file".to_owned(), url.to_owned())));
    let request = t
        .fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/messages"))
        .unwrap();
    let sent_body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(sent_body["message"]["attachment"]["payload"]["url"], url);
    let mid = body["mid"].as_str().unwrap();
    wait_for(
        &t,
        &format!(
            "SELECT count(*) FROM messages WHERE mid = '{mid}' AND text IS NULL
             AND attachments -> 0 ->> 'type' = 'file' AND attachments -> 0 -> 'payload' ->> 'url' = '{url}'"
        ),
        1,
    )
    .await;
}

#[tokio::test]
async fn thirty_hours_on_a_reply_is_refused_locally_unless_human_agent_is_on() {
    let t = conversation(Duration::hours(30), false).await;
    let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &text("late")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "window_closed");
    assert_eq!(send_calls(&t), 0, "Facebook was not called");
    let metrics = t.http.get(t.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("pagesync_oauth_api_replies_total{outcome=\"window_closed\"}"),
        "{metrics}"
    );

    let t = conversation(Duration::hours(30), true).await;
    let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &text("a human here")).await;
    assert_eq!(status, 201, "{body}");
    let sent = &t.fake.sent_messages()[0];
    assert_eq!(sent.messaging_type, "MESSAGE_TAG");
    assert_eq!(sent.tag.as_deref(), Some("HUMAN_AGENT"));
}

#[tokio::test]
async fn eight_days_on_and_where_only_the_page_wrote_the_window_is_closed() {
    let t = conversation(Duration::days(8), true).await;
    let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &text("hello?")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("window_closed"))
    );

    // A conversation the page opened (an echo from the Page inbox), the customer silent.
    echo_webhook(
        &t,
        PAGE_A.0,
        "quiet-1",
        "m_page_only",
        json!(263902037430900u64),
        Utc::now(),
    )
    .await;
    wait_for(
        &t,
        "SELECT count(*) FROM messages WHERE mid = 'm_page_only'",
        1,
    )
    .await;
    let (status, body, _) = reply(&t, PAGE_A.0, "quiet-1", None, &text("anyone?")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("window_closed"))
    );
    assert_eq!(send_calls(&t), 0);
}

#[tokio::test]
async fn each_facebook_refusal_is_422_with_its_code_and_subcode() {
    let t = conversation(Duration::hours(1), false).await;
    for (code, subcode) in [
        (10, Some(2018278)),
        (551, Some(1545041)),
        (100, Some(2018001)),
        (200, None),
        (200, Some(1545041)),
    ] {
        let fault = Fault::Error {
            status: 400,
            code,
            subcode,
            message: "(#x) whatever Facebook says".into(),
        };
        t.fake.inject(
            Match::MethodPath(Method::POST, "/messages".into()),
            fault,
            Some(1),
        );
        let calls = send_calls(&t);

        let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &text("hi")).await;

        assert_eq!(status, 422, "{code}/{subcode:?}: {body}");
        assert_eq!(body["error"], "facebook_error");
        assert_eq!(body["facebook"], json!({"code": code, "subcode": subcode}));
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(send_calls(&t), calls + 1, "a refusal is not retried");
    }
    assert!(
        t.nats
            .events()
            .await
            .iter()
            .all(|e| e.event_type != EventType::MessageEcho),
        "no echo for a refused reply"
    );
}

#[tokio::test]
async fn a_rejected_token_marks_the_integration_and_stops_further_replies() {
    let t = conversation(Duration::hours(1), false).await;
    t.fake.revoke_token(PAGE_A.0);

    let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &text("hi")).await;

    assert_eq!(status, 422, "{body}");
    assert_eq!(body["facebook"], json!({"code": 190, "subcode": 460}));
    let (_, integration) = t
        .api(
            Method::GET,
            &format!("/api/integrations/facebook/{}", PAGE_A.0),
            Auth::Operator,
            None,
        )
        .await;
    assert_eq!(integration["status"], "needs_reauth");
    let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &text("hi again")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("page_not_connected"))
    );
    assert!(
        !t.bodies
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.contains(PAGE_A.2))
    );
}

#[tokio::test]
async fn transient_failures_are_retried_then_the_reply_goes_out_once() {
    let t = conversation(Duration::hours(1), false).await;
    let sends = || Match::MethodPath(Method::POST, "/messages".into());
    t.fake.inject(sends(), Fault::ServerError(500), Some(1));
    t.fake.inject(
        sends(),
        Fault::Error {
            status: 400,
            code: 613,
            subcode: None,
            message: "(#613) Calls to this api have exceeded the rate limit.".into(),
        },
        Some(1),
    );
    t.fake.inject(
        sends(),
        Fault::Error {
            status: 500,
            code: 1,
            subcode: Some(99),
            message: "An unknown error occurred".into(),
        },
        Some(1),
    );

    let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &text("persistence")).await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(send_calls(&t), 4, "three failures, then the send");
    assert_eq!(t.fake.sent_messages().len(), 1);
}

#[tokio::test]
async fn a_persistent_outage_is_502_after_the_retries() {
    let t = conversation(Duration::hours(1), false).await;
    t.fake.inject(
        Match::MethodPath(Method::POST, "/messages".into()),
        Fault::ServerError(503),
        None,
    );

    let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &text("anyone?")).await;

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "facebook_unavailable");
    assert_eq!(send_calls(&t), 4, "the first attempt and 3 retries");
}

#[tokio::test]
async fn a_throttle_facebook_says_lasts_minutes_fails_fast_as_502() {
    let t = conversation(Duration::hours(1), false).await;
    t.fake.inject(
        Match::MethodPath(Method::POST, "/messages".into()),
        Fault::Throttle {
            code: 80006,
            regain_minutes: 5,
        },
        Some(1),
    );

    let started = std::time::Instant::now();
    let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &text("busy?")).await;

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "facebook_unavailable");
    assert_eq!(
        send_calls(&t),
        1,
        "not called again while Facebook said to wait"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn another_users_unknown_and_unauthenticated_conversations_are_refused() {
    let t = TestApp::spawn_with_pipeline().await;
    let (alice, status, body) = t.connect("alice", &[PAGE_A]).await;
    assert_eq!(status, 200, "{body}");
    let (bob, _, _) = t.connect("bob", &[PAGE_B]).await;
    customer_writes(&t, PAGE_A.0, CUSTOMER, "m_alice_1", Utc::now()).await;
    let path = format!("/api/conversations/{}/{CUSTOMER}/messages", PAGE_A.0);

    let (mine, body) = t
        .api(Method::POST, &path, Auth::Session(&alice), Some(text("hi")))
        .await;
    let (theirs, _) = t
        .api(Method::POST, &path, Auth::Session(&bob), Some(text("hi")))
        .await;
    let unknown = format!("/api/conversations/{}/nobody/messages", PAGE_A.0);
    let (missing, _) = t
        .api(
            Method::POST,
            &unknown,
            Auth::Session(&alice),
            Some(text("hi")),
        )
        .await;
    let (anonymous, _) = t
        .api(Method::POST, &path, Auth::None, Some(text("hi")))
        .await;

    assert_eq!(mine, 201, "{body}");
    assert_eq!(theirs, 404);
    assert_eq!(missing, 404);
    assert_eq!(anonymous, 401);
    assert_eq!(t.fake.sent_messages().len(), 1);
}

#[tokio::test]
async fn malformed_json_is_400_and_bad_fields_are_422() {
    let t = conversation(Duration::hours(1), false).await;
    let url = t.url(&format!(
        "/api/conversations/{}/{CUSTOMER}/messages",
        PAGE_A.0
    ));
    let resp = t
        .http
        .post(&url)
        .bearer_auth(crate::support::OPERATOR_TOKEN)
        .header("content-type", "application/json")
        .body("{\"text\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = t.read(resp).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("malformed_json"))
    );

    for bad in [
        json!({}),
        json!({"text": ""}),
        json!({"text": "   "}),
        json!({"text": "x".repeat(2001)}),
        json!({"text": 5}),
        json!({"text": "hi", "attachment": {"type": "image", "url": "https://a.test/x.png"}}),
        json!({"attachment": {"type": "sticker", "url": "https://a.test/x.png"}}),
        json!({"attachment": {"type": "image", "url": "ftp://a.test/x.png"}}),
        json!({"attachment": {"type": "image"}}),
        json!({"text": "hi", "tag": "HUMAN_AGENT"}),
    ] {
        let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_fields", "{bad}");
    }
    assert_eq!(send_calls(&t), 0);

    // 2,000 characters (not bytes) is Facebook's limit, and fine.
    let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, None, &text(&"é".repeat(2000))).await;
    assert_eq!(status, 201, "{body}");
}

/// An Instagram account linked to PAGE_A, with a conversation whose customer
/// wrote `ago` (stored as the projector stores it: Instagram ingest is its own part).
async fn instagram_conversation(t: &TestApp, account: &str, linked: Option<&str>, igsid: &str) {
    let client = t.db.client().await;
    let at = Utc::now() - Duration::minutes(10);
    client
        .execute(
            "INSERT INTO pages (page_id, platform, linked_page_id) VALUES ($1, 'instagram', $2)",
            &[&account, &linked],
        )
        .await
        .unwrap();
    client
        .execute(
            // last_in_ms as the projector keeps it for this incoming message.
            "INSERT INTO conversations (page_id, psid, platform, last_in_ms)
             VALUES ($1, $2, 'instagram', $3)",
            &[&account, &igsid, &at.timestamp_millis()],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO conversation_events (item_id, page_id, psid, event_type, source, source_rank,
                 timestamp_ms, in_file, data, stream_seq, direction, text)
             VALUES ($1, $2, $3, 'message', 'pagesync/ingest', 0, $4, true, '{}', 1, 'in', 'hi')",
            &[&format!("m_ig_{igsid}"), &account, &igsid, &at.timestamp_millis()],
        )
        .await
        .unwrap();
    t.fake.add_message(
        PAGE_A.0,
        igsid,
        pagesync_fake_graph::FakeMessage::customer("m_ig", "hi", at),
    );
}

#[tokio::test]
async fn an_instagram_reply_goes_through_the_linked_page_and_is_echoed_for_the_account() {
    let t = TestApp::spawn().await;
    connect_by_hand(&t, PAGE_A).await;
    let account = "17841400000000001";
    instagram_conversation(&t, account, Some(PAGE_A.0), "igsid-1").await;
    instagram_conversation(&t, "17841400000000002", None, "igsid-2").await;

    let (status, body, _) = reply(&t, account, "igsid-1", None, &text("hi from IG")).await;
    let (unlinked, refusal, _) = reply(&t, "17841400000000002", "igsid-2", None, &text("hi")).await;

    assert_eq!(status, 201, "{body}");
    let sent = &t.fake.sent_messages()[0];
    assert_eq!(
        (sent.page_id.as_str(), sent.psid.as_str()),
        (PAGE_A.0, "igsid-1")
    );
    let request = t
        .fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/messages"))
        .unwrap();
    assert_eq!(request.path, format!("/{}/messages", PAGE_A.0));
    assert_eq!(request.param("access_token"), Some(PAGE_A.2));
    let echo = the_echo(&t).await;
    assert_eq!(echo.page_id.as_ref().unwrap().as_str(), account);
    assert_eq!(echo.platform.as_str(), "instagram");
    let data: Value = serde_json::from_str(echo.data.get()).unwrap();
    assert_eq!(data["sender"]["id"], account);
    assert_eq!(data["recipient"]["id"], "igsid-1");
    assert_eq!(
        (unlinked, refusal["error"].as_str()),
        (409, Some("page_not_connected"))
    );
}
