//! `GET /api/events`: Server-Sent Events after signed webhooks.

use std::time::Duration;

use serde_json::Value;

use super::{PAGE, VISIBLE, now_ms, text, webhook};
use crate::support::{OPERATOR_TOKEN, PAGE_B, TestApp};

/// One dispatched SSE event.
#[derive(Debug)]
struct SseEvent {
    id: String,
    event: String,
    data: Value,
}

/// Reads an event stream chunk by chunk (comments are keep-alives, skipped).
struct Stream {
    resp: reqwest::Response,
    buf: String,
}

enum Auth<'a> {
    Operator,
    Session(&'a str),
}

impl Stream {
    async fn open(app: &TestApp, auth: Auth<'_>, last_event_id: Option<&str>) -> Self {
        let mut req = app.http.get(app.url("/api/events"));
        req = match auth {
            Auth::Operator => req.bearer_auth(OPERATOR_TOKEN),
            Auth::Session(cookie) => req.header("cookie", cookie),
        };
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Self {
            resp,
            buf: String::new(),
        }
    }

    /// The next event; None when the stream ended. Panics when none comes in time.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(SseEvent { id, event, data });
            }
            let chunk = tokio::time::timeout(VISIBLE, self.resp.chunk())
                .await
                .expect("an event or the end came in time")
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self.buf.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => return None,
            }
        }
    }

    /// Events until one for `psid`; returns it and the ones before it.
    async fn until(&mut self, psid: &str) -> (SseEvent, Vec<SseEvent>) {
        let mut before = Vec::new();
        loop {
            let e = self.next().await.expect("the stream stays open");
            if e.data["psid"] == psid {
                return (e, before);
            }
            before.push(e);
        }
    }
}

#[tokio::test]
async fn a_webhook_reaches_an_open_stream_and_a_reconnect_gets_what_it_missed() {
    // Arrange
    let app = TestApp::spawn_with_pipeline().await;
    let mut stream = Stream::open(&app, Auth::Operator, None).await;

    // Act
    let sent = std::time::Instant::now();
    webhook(
        &app,
        PAGE,
        vec![text(PAGE, "s1", "m_s1", now_ms(), "live?")],
    )
    .await;
    let (first, _) = stream.until("s1").await;
    let latency = sent.elapsed();
    drop(stream);
    webhook(
        &app,
        PAGE,
        vec![text(PAGE, "s2", "m_s2", now_ms(), "missed")],
    )
    .await;
    let mut resumed = Stream::open(&app, Auth::Operator, Some(&first.id)).await;
    let (missed, _) = resumed.until("s2").await;

    // Assert
    assert_eq!(first.event, "conversation");
    assert_eq!(first.data["last_message_text"], "live?");
    assert_eq!(first.data["reply_window"]["kind"], "response");
    assert!(latency < Duration::from_secs(5), "took {latency:?}");
    assert!(missed.id.parse::<i64>().unwrap() > first.id.parse::<i64>().unwrap());
    assert_eq!(missed.data["last_message_text"], "missed");
}

#[tokio::test]
async fn another_users_stream_never_sees_my_pages_and_streams_end_at_shutdown() {
    // Arrange: eve owns page B only; the operator watches everything.
    let app = TestApp::spawn_with_pipeline().await;
    let (eve, status, _) = app.connect("eve", &[PAGE_B]).await;
    assert_eq!(status, 200);
    let mut eves = Stream::open(&app, Auth::Session(&eve), None).await;
    let mut replayed = Stream::open(&app, Auth::Session(&eve), Some("0")).await;

    // Act: page A's conversation changes first, then eve's.
    webhook(
        &app,
        PAGE,
        vec![text(PAGE, "not_eves", "m_a", now_ms(), "private")],
    )
    .await;
    webhook(
        &app,
        PAGE_B.0,
        vec![text(PAGE_B.0, "eves", "m_b", now_ms(), "mine")],
    )
    .await;
    let (own, before) = eves.until("eves").await;
    let (_, replayed_before) = replayed.until("eves").await;
    app.stop();
    let mut after = Vec::new();
    while let Some(e) = eves.next().await {
        after.push(e);
    }

    // Assert
    assert_eq!(own.data["page_id"], PAGE_B.0);
    for e in before.iter().chain(&replayed_before).chain(&after) {
        assert_eq!(e.data["page_id"], PAGE_B.0, "another page's event: {e:?}");
    }
    // Reaching here means the stream ended: the server's shutdown closed it.
}
