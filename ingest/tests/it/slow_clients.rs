//! Clients that hold sockets or memory: slow heads and bodies, unfinished large
//! bodies, more sockets than the cap. A valid delivery still succeeds during each.

use std::time::Duration;

use pagesync_testkit::raw_http::{self, GENEROUS};
use pagesync_testkit::wait;
use reqwest::StatusCode;

use crate::app::{TestApp, message_delivery};

const WEBHOOK: &str = "/facebook/webhook";
const MIB: usize = 1024 * 1024;

async fn spawn(change: impl FnOnce(&mut pagesync_ingest::Config)) -> TestApp {
    let nats = pagesync_testkit::TestNats::new().await;
    let mut config = crate::app::config(&nats);
    change(&mut config);
    TestApp::spawn_with(nats, config).await
}

fn signature_header(app: &TestApp) -> String {
    // Well-formed, so the body is read; it cannot match, so nothing is published.
    format!("x-hub-signature-256: {}", app.secret.sign(b"other"))
}

async fn assert_delivery_succeeds(app: &TestApp, mid: &str) {
    let res = app.post_signed(message_delivery(mid)).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a valid delivery during the attack"
    );
}

#[tokio::test]
async fn a_silent_socket_and_a_head_sent_byte_by_byte_are_closed_while_a_delivery_succeeds() {
    // Arrange
    let app = spawn(|c| c.http.http_header_timeout = Duration::from_millis(500)).await;
    let mut silent = raw_http::connect(app.addr).await;
    let mut slow = raw_http::connect(app.addr).await;
    let head = raw_http::post_head(
        WEBHOOK,
        10,
        &["x-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
    );

    // Act
    let slow_head = tokio::spawn(async move {
        let mut answer = Vec::new();
        let every = Duration::from_millis(50);
        raw_http::trickle_until_closed(&mut slow, &head, every, GENEROUS, &mut answer).await
    });
    assert_delivery_succeeds(&app, "m_during_slow_head").await;

    // Assert
    assert!(
        slow_head.await.unwrap(),
        "the slow head's socket was not closed"
    );
    let mut answer = Vec::new();
    assert!(raw_http::closed_within(&mut silent, GENEROUS, &mut answer).await);
    assert_eq!(app.nats.message_count().await, 1);
}

#[tokio::test]
async fn a_body_sent_byte_by_byte_is_answered_408_while_a_delivery_succeeds() {
    // Arrange
    let app = spawn(|c| c.ingest_body_timeout = Duration::from_millis(500)).await;
    let mut slow = raw_http::connect(app.addr).await;
    let head = raw_http::post_head(WEBHOOK, 1000, &[&signature_header(&app)]);
    tokio::io::AsyncWriteExt::write_all(&mut slow, &head)
        .await
        .unwrap();

    // Act
    let slow_body = tokio::spawn(async move {
        let mut answer = Vec::new();
        let every = Duration::from_millis(50);
        let closed =
            raw_http::trickle_until_closed(&mut slow, b"{", every, GENEROUS, &mut answer).await;
        (closed, String::from_utf8_lossy(&answer).into_owned())
    });
    assert_delivery_succeeds(&app, "m_during_slow_body").await;

    // Assert
    let (closed, answer) = slow_body.await.unwrap();
    assert!(closed, "the slow body's socket was not closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert_eq!(app.nats.message_count().await, 1);
}

#[tokio::test]
async fn a_missing_signature_is_refused_before_the_body_arrives() {
    let app = TestApp::spawn().await;
    let mut client = raw_http::connect(app.addr).await;
    let head = raw_http::post_head(WEBHOOK, 4 * MIB - 1, &[]);
    tokio::io::AsyncWriteExt::write_all(&mut client, &head)
        .await
        .unwrap();

    let status = raw_http::status_line(&mut client, GENEROUS).await;

    assert_eq!(status.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
}

#[tokio::test]
async fn unfinished_large_bodies_past_the_budget_make_the_next_large_one_503_and_small_ones_pass() {
    // Arrange: room for two unfinished 1 MiB bodies and small deliveries, not a third.
    let app = spawn(|c| {
        c.ingest_max_body_bytes = MIB;
        c.ingest_body_budget_bytes = 2 * MIB + MIB / 2;
        c.ingest_body_timeout = Duration::from_millis(2500);
        c.ingest_publish_timeout = Duration::from_secs(1);
    })
    .await;
    let mut unfinished = Vec::new();
    for _ in 0..2 {
        let mut socket = raw_http::begin_body(app.addr, &expecting(&app, MIB)).await;
        let half = vec![b' '; MIB / 2];
        tokio::io::AsyncWriteExt::write_all(&mut socket, &half)
            .await
            .unwrap();
        unfinished.push(socket);
    }

    // Act: the head alone, so the answer cannot race the client's upload.
    let mut third = raw_http::connect(app.addr).await;
    let head = raw_http::post_head(WEBHOOK, MIB, &[&signature_header(&app)]);
    tokio::io::AsyncWriteExt::write_all(&mut third, &head)
        .await
        .unwrap();
    let mut refused = Vec::new();
    assert!(raw_http::closed_within(&mut third, GENEROUS, &mut refused).await);

    // Assert
    let refused = String::from_utf8_lossy(&refused);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains(r#""error":"overloaded""#), "{refused}");
    assert_delivery_succeeds(&app, "m_small").await;
    for mut socket in unfinished {
        let mut answer = Vec::new();
        assert!(raw_http::closed_within(&mut socket, GENEROUS, &mut answer).await);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let mut large = message_delivery("m_large");
    large.push_str(&" ".repeat(MIB - large.len() - 10));
    assert_eq!(app.post_signed(large).await.status(), StatusCode::OK);
    assert_eq!(app.nats.message_count().await, 2);
}

/// A signed-looking POST head of `length` bytes that waits for `100 Continue`.
fn expecting(app: &TestApp, length: usize) -> Vec<u8> {
    raw_http::post_head(
        WEBHOOK,
        length,
        &[&signature_header(app), "expect: 100-continue"],
    )
}

#[tokio::test]
async fn idle_sockets_past_the_connection_cap_make_room_for_a_delivery() {
    // Arrange: the header timeout is long, so only the cap can free the sockets.
    let app = spawn(|c| {
        c.http.http_max_connections = 32;
        c.http.http_header_timeout = Duration::from_secs(60);
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(raw_http::connect(app.addr).await);
    }

    // Act
    assert_delivery_succeeds(&app, "m_past_the_cap").await;

    // Assert: the oldest idle sockets were closed to make room, the newest kept.
    let idle = tokio::sync::Mutex::new(idle);
    wait::until(
        GENEROUS,
        "the oldest 33 idle sockets are closed",
        || async {
            let mut closed = 0;
            for socket in idle.lock().await.iter_mut() {
                closed += usize::from(raw_http::is_closed(socket).await);
            }
            closed >= 64 + 1 - 32
        },
    )
    .await;
    assert!(!raw_http::is_closed(idle.lock().await.last_mut().unwrap()).await);
    assert_eq!(app.nats.message_count().await, 1);
}

/// An ingest whose bodies may take 2.5 s, changed by `cap`, with two requests in
/// progress whose bodies never finish.
async fn two_requests_in_progress(
    cap: impl FnOnce(&mut pagesync_ingest::Config),
) -> (TestApp, Vec<tokio::net::TcpStream>) {
    let app = spawn(|c| {
        c.ingest_body_timeout = Duration::from_millis(2500);
        c.ingest_publish_timeout = Duration::from_secs(1);
        cap(c);
    })
    .await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        busy.push(raw_http::begin_body(app.addr, &expecting(&app, 100)).await);
    }
    (app, busy)
}

/// The unfinished requests end (their body timeout) and their sockets close.
async fn assert_closed(sockets: Vec<tokio::net::TcpStream>) {
    for mut socket in sockets {
        let mut answer = Vec::new();
        assert!(raw_http::closed_within(&mut socket, GENEROUS, &mut answer).await);
    }
}

#[tokio::test]
async fn with_every_connection_in_a_request_a_new_one_is_answered_503_at_once() {
    let (app, busy) = two_requests_in_progress(|c| c.http.http_max_connections = 2).await;

    let mut newcomer = raw_http::connect(app.addr).await;
    let status = raw_http::status_line(&mut newcomer, GENEROUS).await;

    assert_eq!(status.as_deref(), Some("HTTP/1.1 503 Service Unavailable"));
    assert_closed(busy).await;
    assert_delivery_succeeds(&app, "m_after_the_busy_ones").await;
}

#[tokio::test]
async fn requests_past_the_request_cap_are_answered_503_at_once() {
    let (app, busy) = two_requests_in_progress(|c| c.http.http_max_requests = 2).await;

    let shed = app.post_signed(message_delivery("m_shed")).await;

    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_closed(busy).await;
    assert_delivery_succeeds(&app, "m_after_the_cap").await;
    assert_eq!(app.nats.message_count().await, 1);
}
