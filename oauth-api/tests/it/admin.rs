//! `/api/admin/dead-letters`: an operator lists, shows, retries and discards the
//! projector's dead letters through the API, with the operator token only.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::Value;

use crate::inbox::{PAGE, now_ms, text, webhook};
use crate::support::{Auth, OPERATOR_TOKEN, PAGE_A, TestApp};

const LETTERS: &str = "/api/admin/dead-letters";

async fn admin(app: &TestApp, method: Method, path: &str) -> (u16, Value) {
    app.api(method, path, Auth::Operator, None).await
}

async fn dead_letters(app: &TestApp) -> Vec<i64> {
    let rows = app
        .db
        .client()
        .await
        .query(
            "SELECT stream_seq FROM dead_letters ORDER BY stream_seq",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Two dead letters: a message Postgres refuses (a constraint standing in for a
/// bug) and a message that is no envelope at all.
async fn two_dead_letters(app: &TestApp) -> (i64, i64) {
    app.db
        .client()
        .await
        .batch_execute(
            "ALTER TABLE conversation_events ADD CONSTRAINT refuse_boom CHECK (text IS DISTINCT FROM 'boom')",
        )
        .await
        .unwrap();
    webhook(
        app,
        PAGE,
        vec![text(PAGE, "d1", "m_boom", now_ms(), "boom")],
    )
    .await;
    app.nats
        .js
        .publish(
            format!("{}._.message", app.nats.prefix),
            "no envelope".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    pagesync_testkit::wait::until(Duration::from_secs(15), "two dead letters", || async {
        dead_letters(app).await.len() == 2
    })
    .await;
    let seqs = dead_letters(app).await;
    (seqs[0], seqs[1])
}

#[tokio::test]
async fn only_the_operator_token_opens_the_admin_routes() {
    // Arrange: a user with a session, and the console's operator cookie.
    let app = TestApp::spawn_with_pipeline().await;
    let (session, _, _) = app.connect("Alice", &[PAGE_A]).await;
    let console_cookie = format!(
        "pagesync_operator={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(OPERATOR_TOKEN)
    );

    // Act
    let as_user = app
        .api(Method::GET, LETTERS, Auth::Session(&session), None)
        .await;
    let as_console = app
        .api(Method::GET, LETTERS, Auth::Session(&console_cookie), None)
        .await;
    let anonymous = app.api(Method::GET, LETTERS, Auth::None, None).await;
    let discard = app
        .api(
            Method::DELETE,
            &format!("{LETTERS}/1"),
            Auth::Session(&session),
            None,
        )
        .await;
    let operator = admin(&app, Method::GET, LETTERS).await;

    // Assert
    for (status, body) in [as_user, as_console, anonymous, discard] {
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "unauthorized", "{body}");
    }
    assert_eq!(operator.0, 200, "{}", operator.1);
    assert_eq!(operator.1["total"], 0);
}

#[tokio::test]
async fn an_operator_lists_shows_retries_and_discards_dead_letters() {
    // Arrange
    let app = TestApp::spawn_with_pipeline().await;
    let (boom, garbage) = two_dead_letters(&app).await;

    // Act and assert: the list, without payloads, paged
    let (status, list) = admin(&app, Method::GET, LETTERS).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 2);
    assert_eq!(list["data"][0]["stream_seq"], boom);
    assert_eq!(list["data"][0]["event_type"], "message");
    assert!(
        list["data"][0]["error"]
            .as_str()
            .unwrap()
            .contains("the database refused")
    );
    assert!(list["data"][0].get("payload").is_none(), "{list}");
    assert_eq!(list["next_after"], Value::Null);
    let (_, first) = admin(&app, Method::GET, &format!("{LETTERS}?limit=1")).await;
    assert_eq!(first["next_after"], boom);
    let (_, second) = admin(
        &app,
        Method::GET,
        &format!("{LETTERS}?limit=1&after={boom}"),
    )
    .await;
    assert_eq!(second["data"][0]["stream_seq"], garbage);
    assert_eq!(
        admin(&app, Method::GET, &format!("{LETTERS}?limit=0"))
            .await
            .0,
        400
    );

    // one, with its payload
    let (status, one) = admin(&app, Method::GET, &format!("{LETTERS}/{boom}")).await;
    assert_eq!(status, 200, "{one}");
    assert!(one["payload"].as_str().unwrap().contains("m_boom"), "{one}");
    assert_eq!(
        admin(&app, Method::GET, &format!("{LETTERS}/999999"))
            .await
            .0,
        404
    );

    // retry, once the cause is fixed: the copy is applied by the running projector
    app.db
        .client()
        .await
        .batch_execute("ALTER TABLE conversation_events DROP CONSTRAINT refuse_boom")
        .await
        .unwrap();
    let (status, retried) = admin(&app, Method::POST, &format!("{LETTERS}/{boom}/retry")).await;
    assert_eq!(status, 202, "{retried}");
    assert!(retried["republished_as"].as_i64().unwrap() > garbage);
    pagesync_testkit::wait::until(
        Duration::from_secs(15),
        "the retried message applied",
        || async {
            app.count("SELECT count(*) FROM conversation_events WHERE text = 'boom'")
                .await
                == 1
        },
    )
    .await;
    assert_eq!(dead_letters(&app).await, [garbage]);

    // discard
    let url = format!("{LETTERS}/{garbage}");
    assert_eq!(admin(&app, Method::DELETE, &url).await.0, 204);
    assert_eq!(admin(&app, Method::DELETE, &url).await.0, 404);
    assert!(dead_letters(&app).await.is_empty());
}
