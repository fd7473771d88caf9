//! Security headers on every answer, and bodies over the limit.

use pagesync_testkit::raw_http::{self, GENEROUS};
use reqwest::header::HeaderMap;
use tokio::io::AsyncWriteExt;

use crate::support::{OPERATOR_TOKEN, TestApp};

const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("content-security-policy", "frame-ancestors 'none'"),
    ("referrer-policy", "no-referrer"),
];

fn assert_secured(what: &str, headers: &HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{what}: {name}"
        );
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let t = TestApp::spawn().await;

    let login = t.http.get(t.url("/facebook/login")).send().await.unwrap();
    assert_eq!(login.status().as_u16(), 307);
    assert_secured("the login redirect carrying the state", login.headers());

    let list = t
        .http
        .get(t.url("/api/integrations/facebook"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status().as_u16(), 200);
    assert_secured("authenticated JSON", list.headers());

    for path in [
        "/api/integrations/facebook",
        "/health",
        "/openapi.json",
        "/no/such/route",
    ] {
        let res = t.http.get(t.url(path)).send().await.unwrap();
        assert_secured(path, res.headers());
    }
}

#[tokio::test]
async fn a_json_body_over_the_limit_is_413_whether_declared_or_chunked() {
    let t = TestApp::spawn().await;
    let put = |extra: &str| {
        format!(
            "PUT /api/integrations/facebook/101 HTTP/1.1\r\nhost: test\r\n\
             authorization: Bearer {OPERATOR_TOKEN}\r\ncontent-type: application/json\r\n{extra}\r\n"
        )
    };

    // Declared: refused before the body is read.
    let mut declared = raw_http::connect(t.addr).await;
    let head = put("content-length: 3000000\r\n");
    declared.write_all(head.as_bytes()).await.unwrap();
    let status = raw_http::status_line(&mut declared, GENEROUS).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));

    // Chunked: refused once the limit is passed.
    let mut chunked = raw_http::connect(t.addr).await;
    let chunk = format!("{:x}\r\n{}\r\n", 3_000_000, " ".repeat(100_000));
    let head = put("transfer-encoding: chunked\r\n");
    chunked.write_all(head.as_bytes()).await.unwrap();
    chunked.write_all(chunk.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    assert!(raw_http::closed_within(&mut chunked, GENEROUS, &mut answer).await);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(r#""error":"payload_too_large""#),
        "{answer}"
    );
}
