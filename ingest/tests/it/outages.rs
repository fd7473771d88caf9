use std::time::Duration;

use pagesync_testkit::{PrivateNats, TestNats, wait};
use reqwest::StatusCode;

use crate::app::{TestApp, config, message_delivery};

#[tokio::test]
async fn with_nats_down_a_delivery_gets_503_and_the_retry_lands_each_event_once() {
    let mut server = PrivateNats::start().await;
    let nats = TestNats::on(&server.url()).await;
    let mut cfg = config(&nats);
    cfg.ingest_publish_timeout = Duration::from_millis(500);
    let app = TestApp::spawn_with(nats, cfg).await;
    let ready = |app: &TestApp| {
        let (http, url) = (app.http.clone(), app.url("/ready"));
        async move { http.get(url).send().await.map(|r| r.status()).ok() }
    };
    assert_eq!(ready(&app).await, Some(StatusCode::OK));
    let first = message_delivery("m_before");
    assert_eq!(app.post_signed(first).await.status(), StatusCode::OK);

    server.stop();
    let during = r#"{"object":"page","entry":[
        {"id":"101","time":1,"messaging":[{"sender":{"id":"9"},"recipient":{"id":"101"},"timestamp":1697051234567,"message":{"mid":"m_during_1"}}]},
        {"id":"101","time":2,"messaging":[{"sender":{"id":"9"},"recipient":{"id":"101"},"timestamp":1697051234568,"message":{"mid":"m_during_2"}}]}]}"#;
    let res = app.post_signed(during).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = res.json().await.unwrap();
    assert_eq!(json["error"], "unavailable");
    let body = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(body.status(), StatusCode::SERVICE_UNAVAILABLE);
    let reason: serde_json::Value = body.json().await.unwrap();
    assert!(reason["reason"].as_str().is_some_and(|r| !r.is_empty()));

    server.restart().await;
    wait::until(Duration::from_secs(15), "ingest ready again", || async {
        ready(&app).await == Some(StatusCode::OK)
    })
    .await;
    // Facebook retries the delivery that got 503, possibly more than once.
    for _ in 0..2 {
        assert_eq!(app.post_signed(during).await.status(), StatusCode::OK);
    }
    let mut ids: Vec<String> = app
        .nats
        .messages()
        .await
        .into_iter()
        .filter_map(|m| m.msg_id)
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "pagesync/ingest:m_before",
            "pagesync/ingest:m_during_1",
            "pagesync/ingest:m_during_2"
        ]
    );
}
