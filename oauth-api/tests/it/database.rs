//! A Postgres connection that goes silent (half-open: no FIN, no RST) under a request.

use std::time::Duration;

use reqwest::Method;

use crate::support::{Auth, TestApp};

const LIST: &str = "/api/integrations/facebook";

#[tokio::test]
async fn a_request_on_a_silent_connection_fails_in_time_and_the_next_one_is_served() {
    // Arrange: a pooled connection, made through the proxy, is frozen.
    let t = TestApp::spawn_behind_proxy(Duration::from_secs(3)).await;
    assert_eq!(t.api(Method::GET, LIST, Auth::Operator, None).await.0, 200);
    let proxy = t.proxy.as_ref().expect("behind a proxy");
    assert!(proxy.freeze() > 0, "the app had a connection open");

    // Act
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(20),
        t.api(Method::GET, LIST, Auth::Operator, None),
    )
    .await
    .expect("an answer although the connection is silent");

    // Assert: an error, not a hang; the next request gets a new connection.
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "internal");
    let (status, body) = t.api(Method::GET, LIST, Auth::Operator, None).await;
    assert_eq!(status, 200, "{body}");
}
