use reqwest::StatusCode;

use crate::app::{TestApp, message_delivery, metric_value};

#[tokio::test]
async fn unsigned_or_wrongly_signed_deliveries_get_401_and_publish_nothing() {
    let app = TestApp::spawn().await;
    let body = message_delivery("m_sig");
    let other_secret = pagesync_schema::signature::AppSecret::new(&"other".to_owned().into());
    let good = app.secret.sign(body.as_bytes());
    let cases = [
        None,
        Some(String::new()),
        Some("sha256=".to_owned()),
        Some("sha1=0123456789abcdef0123456789abcdef01234567".to_owned()),
        Some(good.trim_start_matches("sha256=").to_owned()),
        Some(format!("sha256={}", "0".repeat(64))),
        Some(other_secret.sign(body.as_bytes())),
        Some(app.secret.sign(b"a different body")),
        Some(format!("{good}00")),
    ];
    for path in pagesync_ingest::WEBHOOK_PATHS {
        for sig in &cases {
            let res = app
                .post(path, body.clone().into_bytes(), sig.as_deref())
                .await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path} {sig:?}");
            let json: serde_json::Value = res.json().await.unwrap();
            assert_eq!(json["error"], "invalid_signature");
        }
    }
    assert_eq!(app.nats.message_count().await, 0);
    let metrics = app.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "pagesync_ingest_deliveries_total",
            "outcome=\"bad_signature\""
        ) >= 16.0
    );
    assert!(
        metric_value(
            &metrics,
            "pagesync_ingest_deliveries_total",
            "outcome=\"missing_signature\""
        ) >= 2.0
    );
}

#[tokio::test]
async fn a_body_signed_over_its_unicode_escaped_bytes_is_accepted_and_kept_verbatim() {
    let app = TestApp::spawn().await;
    let raw = r#"{"object":"page","entry":[{"id":"101","time":1,"messaging":[{"sender":{"id":"9"},"recipient":{"id":"101"},"timestamp":1697051234567,"message":{"mid":"m_esc","text":"\u00e4\u00f6\u00e5 \/ https:\/\/x.y\/z"}}]}]}"#;
    // Re-serialised JSON would carry "äöå / https://x.y/z" and another signature.
    let reserialised =
        serde_json::to_vec(&serde_json::from_str::<serde_json::Value>(raw).unwrap()).unwrap();
    assert_ne!(
        app.secret.sign(raw.as_bytes()),
        app.secret.sign(&reserialised)
    );

    let wrong = app.secret.sign(&reserialised);
    let res = app
        .post("/facebook/webhook", raw.as_bytes().to_vec(), Some(&wrong))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = app.post_signed(raw).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "EVENT_RECEIVED");
    let stored = app.nats.messages().await;
    assert_eq!(stored.len(), 1);
    let payload = String::from_utf8(stored[0].payload.clone()).unwrap();
    assert!(
        payload.contains(r#""\u00e4\u00f6\u00e5 \/ https:\/\/x.y\/z""#),
        "{payload}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_publishes_nothing() {
    let nats = pagesync_testkit::TestNats::new().await;
    let mut config = crate::app::config(&nats);
    config.ingest_max_body_bytes = 1024;
    let app = TestApp::spawn_with(nats, config).await;

    let mut body = message_delivery("m_big");
    body.push_str(&" ".repeat(2048));
    let res = app.post_signed(body).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let unsigned = vec![b'x'; 4096];
    let res = app.post("/api/webhooks/facebook", unsigned, None).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let small = message_delivery("m_small");
    assert_eq!(app.post_signed(small).await.status(), StatusCode::OK);
    assert_eq!(app.nats.message_count().await, 1);
    let metrics = app.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "pagesync_ingest_deliveries_total",
            "outcome=\"too_large\""
        ) >= 2.0
    );
}

/// A body within `INGEST_MAX_BODY_BYTES` can still hold one item larger than NATS
/// takes in a message (its `max_payload`, 1 MiB by default). Retrying cannot help,
/// so it gets 413 at once, not 503 forever, and no item of it is published.
#[tokio::test]
async fn a_delivery_with_an_item_nats_cannot_take_gets_413_and_publishes_nothing() {
    // Arrange: a body limit above the server's max_payload, and an item just over it.
    let nats = pagesync_testkit::TestNats::new().await;
    let max_payload = nats.client.server_info().max_payload;
    let mut config = crate::app::config(&nats);
    config.ingest_max_body_bytes = max_payload * 2;
    let app = TestApp::spawn_with(nats, config).await;
    let item = |mid: &str, text: &str| {
        serde_json::json!({"sender": {"id": crate::app::PSID}, "recipient": {"id": crate::app::PAGE},
                           "timestamp": 1458692752478_i64, "message": {"mid": mid, "text": text}})
    };
    let body = serde_json::json!({"object": "page", "entry": [{"id": crate::app::PAGE, "time": 1458692752478_i64,
        "messaging": [item("m_small", "hi"), item("m_huge", &"x".repeat(max_payload + 1000))]}]})
    .to_string();

    // Act
    let res = app.post_signed(body).await;

    // Assert
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let answer: serde_json::Value = res.json().await.unwrap();
    assert_eq!(answer["error"], "payload_too_large");
    assert_eq!(app.nats.message_count().await, 0);
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "pagesync_ingest_deliveries_total",
            "outcome=\"item_too_large\""
        ),
        1.0
    );
    assert_eq!(
        app.post_signed(message_delivery("m_after")).await.status(),
        StatusCode::OK
    );
}
