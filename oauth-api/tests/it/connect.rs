use std::time::Duration;

use pagesync_fake_graph::{Fault, Match};
use pagesync_testkit::wait;
use serde_json::Value;

use crate::support::{PAGE_A, PAGE_B, TestApp};

fn results(answer: &Value, test: &str) -> Vec<(String, String, Value)> {
    answer[test]
        .as_array()
        .unwrap_or_else(|| panic!("{test} is an array: {answer}"))
        .iter()
        .map(|e| {
            (
                e["page_id"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
                e["result"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn connecting_two_pages_stores_them_encrypted_subscribes_once_and_self_tests() {
    let t = TestApp::spawn_with_pipeline().await;
    let code = t.facebook_user("alice", &[PAGE_A, PAGE_B]);
    t.fake.set_subscribed(PAGE_B.0, false);
    let (cookie, state, _) = t.login(None).await;
    let user = state.split(':').nth(2).unwrap().to_owned();

    let (status, answer) = t.callback(Some(&cookie), &code, &state).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["user_uuid"], user.as_str());
    let pages = answer["pages"]["data"].as_array().unwrap();
    let ids: Vec<&str> = pages.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [PAGE_A.0, PAGE_B.0]);
    assert_eq!(pages[0]["name"], PAGE_A.1);
    assert!(pages.iter().all(|p| p.get("access_token").is_none()));
    let success = serde_json::json!({"status": "success"});
    for page in [PAGE_A.0, PAGE_B.0] {
        for (test, kinds) in [
            ("webhook_test", ["metadata", "messages"]),
            ("polling_test", ["metadata", "conversations"]),
        ] {
            let got: Vec<_> = results(&answer, test)
                .into_iter()
                .filter(|(p, _, _)| p == page)
                .collect();
            assert_eq!(got.len(), 2, "{answer}");
            for (kind, (_, got_kind, result)) in kinds.iter().zip(&got) {
                assert_eq!(got_kind, kind);
                assert_eq!(result, &success, "{test} {kind} of {page}: {answer}");
            }
        }
    }

    // Tokens are stored sealed under the current key and open to the right token.
    let client = t.db.client().await;
    let rows = client
        .query(
            "SELECT page_id, page_token_key_id, page_token_ciphertext, owner_user_id::text, active, status
             FROM integrations ORDER BY page_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for (row, (id, _, token)) in rows.iter().zip([PAGE_A, PAGE_B]) {
        assert_eq!(row.get::<_, String>(0), id);
        let key_id: String = row.get(1);
        let bytes: Vec<u8> = row.get(2);
        assert_eq!(key_id, t.cipher.current_key_id());
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
        let opened = t.cipher.decrypt(&key_id, &bytes, id).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&opened), token);
        assert_eq!(row.get::<_, String>(3), user);
        assert!(row.get::<_, bool>(4));
        assert_eq!(row.get::<_, String>(5), "active");
    }
    let owners = t
        .count(&format!(
            "SELECT count(*) FROM pages WHERE owner_user_id = '{user}'"
        ))
        .await;
    assert_eq!(owners, 2);

    // Page A was already subscribed: only page B got a POST, once.
    let posts: Vec<_> = t
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/subscribed_apps"))
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, format!("/{}/subscribed_apps", PAGE_B.0));
    assert!(posts[0].body.contains("message_reactions"));
    assert!(t.fake.subscribed_fields(PAGE_B.0).unwrap().len() == 9);

    // The projector files both pages under the user.
    for page in [PAGE_A.0, PAGE_B.0] {
        let dir = t
            .data_dir()
            .join("users")
            .join(&user)
            .join("facebook")
            .join(page);
        let conv = dir.join("conversations").join("test_user_id.json");
        let meta = dir.join("page_metadata.json");
        wait::until(Duration::from_secs(10), "files under users/<uuid>", || {
            let ok = conv.exists() && meta.exists();
            async move { ok }
        })
        .await;
        let meta: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        assert_eq!(
            meta["data"][0]["name"],
            if page == PAGE_A.0 { PAGE_A.1 } else { PAGE_B.1 }
        );
        assert!(!t.data_dir().join("facebook").join(page).exists());
    }
}

#[tokio::test]
async fn a_user_without_pages_gets_200_with_empty_arrays() {
    let t = TestApp::spawn().await;

    let (_, status, answer) = t.connect("nobody", &[]).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["pages"]["data"], serde_json::json!([]));
    assert_eq!(answer["webhook_test"], serde_json::json!([]));
    assert_eq!(answer["polling_test"], serde_json::json!([]));
    assert!(answer["user_uuid"].is_string());
}

#[tokio::test]
async fn a_failing_step_becomes_that_pages_error_result_not_a_stack_trace() {
    let t = TestApp::spawn().await;
    t.fake.inject(
        Match::MethodPath(
            "POST".parse().unwrap(),
            format!("/{}/subscribed_apps", PAGE_B.0),
        ),
        Fault::Error {
            status: 403,
            code: 200,
            subcode: None,
            message: "(#200) The user must be an administrator of the page".into(),
        },
        None,
    );
    let code = t.facebook_user("bob", &[PAGE_A, PAGE_B]);
    t.fake.set_subscribed(PAGE_B.0, false);
    let (cookie, state, _) = t.login(None).await;

    let (status, answer) = t.callback(Some(&cookie), &code, &state).await;

    assert_eq!(status, 200, "{answer}");
    let webhook = results(&answer, "webhook_test");
    for (page, _, result) in &webhook {
        assert_eq!(result["status"], "error", "{answer}");
        let message = result["message"].as_str().unwrap();
        if page == PAGE_B.0 {
            assert!(message.contains("administrator"), "{message}");
        } else {
            // Nothing listens at the webhook address in this test.
            assert!(message.contains("webhook endpoint"), "{message}");
        }
        assert!(!message.contains("EAAB"), "{message}");
    }
    // Polling does not need webhooks: both pages poll fine.
    for (_, _, result) in results(&answer, "polling_test") {
        assert_eq!(result["status"], "success", "{answer}");
    }
}

#[tokio::test]
async fn a_refused_login_code_is_a_400_with_facebooks_reason() {
    let t = TestApp::spawn().await;
    let (cookie, state, location) = t.login(None).await;
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], pagesync_fake_graph::FakeGraph::APP_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(
        q["scope"],
        "pages_show_list,pages_messaging,pages_manage_metadata,pages_read_engagement"
    );
    assert_eq!(q["redirect_uri"], crate::support::REDIRECT_URI);

    let (status, body) = t.callback(Some(&cookie), "not-a-code", &state).await;

    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "oauth_failed");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("verification code"), "{message}");
    // Facebook's codes in digits, never a Debug-formatted Option.
    assert!(message.contains("code 100, subcode 36007"), "{message}");
    assert!(!message.contains("Some("), "{message}");
}

#[tokio::test]
async fn a_login_the_person_cancelled_is_a_400_after_the_state_check() {
    let t = TestApp::spawn().await;
    let (cookie, state, _) = t.login(None).await;
    let mut url = reqwest::Url::parse(&t.url("/facebook/callback")).unwrap();
    url.query_pairs_mut()
        .append_pair("error", "access_denied")
        .append_pair("error_description", "Permissions error")
        .append_pair("state", &state);

    let (status, body) = t
        .read(
            t.http
                .get(url)
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap(),
        )
        .await;

    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "facebook_login_refused");
    assert_eq!(t.count("SELECT count(*) FROM integrations").await, 0);
    assert_eq!(t.count("SELECT count(*) FROM oauth_state_nonces").await, 1);
}
