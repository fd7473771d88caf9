use reqwest::Method;
use serde_json::json;

use crate::support::{Auth, PAGE_A, PAGE_B, TestApp, files_under};

/// Every text, JSON and bytea value of every table, as bytes.
async fn database_contents(t: &TestApp) -> Vec<(String, Vec<u8>)> {
    let client = t.db.client().await;
    let columns = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = 'public'
               AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea')",
            &[],
        )
        .await
        .unwrap();
    assert!(columns.len() > 10, "the scan sees the tables");
    let mut out = Vec::new();
    for c in &columns {
        let (table, column, ty): (String, String, String) = (c.get(0), c.get(1), c.get(2));
        let sql = if ty == "bytea" {
            format!("SELECT \"{column}\" FROM \"{table}\" WHERE \"{column}\" IS NOT NULL")
        } else {
            format!(
                "SELECT convert_to(\"{column}\"::text, 'UTF8') FROM \"{table}\" WHERE \"{column}\" IS NOT NULL"
            )
        };
        for row in client.query(&sql, &[]).await.unwrap() {
            out.push((format!("{table}.{column}"), row.get::<_, Vec<u8>>(0)));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn no_token_or_secret_appears_in_the_database_logs_responses_or_files() {
    let t = TestApp::spawn_with_pipeline().await;
    // A connect with its self-test, a manual token, a rejected token, and errors.
    let (cookie, status, answer) = t.connect("dave", &[PAGE_A, PAGE_B]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["webhook_test"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["result"]["status"] == "success"),
        "{answer}"
    );
    t.api(
        Method::PUT,
        &format!("/api/integrations/facebook/{}", PAGE_A.0),
        Auth::Session(&cookie),
        Some(json!({"access_token": PAGE_A.2})),
    )
    .await;
    t.api(
        Method::PUT,
        &format!("/api/integrations/facebook/{}", PAGE_B.0),
        Auth::Operator,
        Some(json!({"access_token": "EAAB-rejected-Hj77-s3cr3t"})),
    )
    .await;
    t.api(
        Method::GET,
        "/api/integrations/facebook",
        Auth::Session(&cookie),
        None,
    )
    .await;
    t.api(
        Method::GET,
        "/api/integrations/facebook",
        Auth::Operator,
        None,
    )
    .await;
    t.fake.revoke_token(PAGE_B.0);
    t.api(
        Method::PUT,
        &format!("/api/integrations/facebook/{}", PAGE_B.0),
        Auth::Operator,
        Some(json!({"access_token": PAGE_B.2})),
    )
    .await;
    let mut secrets = t.secrets();
    secrets.push("EAAB-rejected-Hj77-s3cr3t".into());
    let session_value = cookie.strip_prefix("session_id=").unwrap().to_owned();

    // Files are checked once the projector wrote the self-test's message.
    let conv_written = || {
        files_under(t.data_dir())
            .iter()
            .any(|p| p.ends_with("test_user_id.json"))
    };
    pagesync_testkit::wait::until(
        std::time::Duration::from_secs(10),
        "conversation file",
        || {
            let ok = conv_written();
            async move { ok }
        },
    )
    .await;

    let db = database_contents(&t).await;
    let logs = pagesync_testkit::logs::capture("trace").bytes();
    let bodies = t.bodies.lock().unwrap().clone();
    let files: Vec<_> = files_under(t.data_dir())
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    let stream: Vec<_> = t
        .nats
        .messages()
        .await
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert!(!db.is_empty() && !logs.is_empty() && !files.is_empty() && !stream.is_empty());

    for secret in secrets.iter().chain([&session_value]) {
        for (place, bytes) in &db {
            assert!(!contains(bytes, secret), "{secret:?} stored in {place}");
        }
        assert!(!contains(&logs, secret), "{secret:?} in the logs");
        for body in &bodies {
            assert!(
                !body.contains(secret.as_str()),
                "{secret:?} in a response: {body}"
            );
        }
        for (path, bytes) in &files {
            assert!(!contains(bytes, secret), "{secret:?} in {path}");
        }
        for payload in &stream {
            assert!(!contains(payload, secret), "{secret:?} in the event stream");
        }
    }
}
