use chrono::Utc;
use pagesync_oauth_api::state_token::StateSigner;
use secrecy::SecretString;
use uuid::Uuid;

use crate::support::{PAGE_A, STATE_SECRET, TestApp};

fn signer() -> StateSigner {
    StateSigner::new(&SecretString::from(STATE_SECRET.to_owned()))
}

async fn assert_refused(t: &TestApp, cookie: Option<&str>, state: &str, why: &str) {
    let code = t.facebook_user(&format!("u{}", Uuid::new_v4().simple()), &[]);
    let (status, body) = t.callback(cookie, &code, state).await;
    assert_eq!(status, 400, "{why}: {body}");
    assert_eq!(body["error"], "invalid_state", "{why}: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        !body.to_string().contains(state),
        "{why}: the state is not echoed"
    );
}

#[tokio::test]
async fn a_tampered_state_is_refused_with_400() {
    let t = TestApp::spawn().await;
    let (cookie, state, _) = t.login(None).await;
    let parts: Vec<&str> = state.split(':').collect();

    let other_nonce = format!(
        "{}:{}:{}:{}",
        parts[0], "AAAAAAAAAAAAAAAAAAAAAA", parts[2], parts[3]
    );
    let later = format!(
        "{}:{}:{}:{}",
        parts[0].parse::<i64>().unwrap() + 1,
        parts[1],
        parts[2],
        parts[3]
    );
    let mut sig = parts[3].to_owned().into_bytes();
    sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
    let bad_sig = format!(
        "{}:{}:{}:{}",
        parts[0],
        parts[1],
        parts[2],
        String::from_utf8(sig).unwrap()
    );
    let foreign_key = StateSigner::new(&SecretString::from("guess".to_owned())).sign(
        Utc::now().timestamp(),
        "n",
        parts[2].parse().unwrap(),
    );

    for (why, s) in [
        ("nonce changed", other_nonce),
        ("time changed", later),
        ("signature changed", bad_sig),
        ("signed with another secret", foreign_key),
        ("not a state", "garbage".to_owned()),
    ] {
        assert_refused(&t, Some(&cookie), &s, why).await;
    }
    // The genuine state still works afterwards: refusals spent nothing.
    let code = t.facebook_user("genuine", &[]);
    let (status, body) = t.callback(Some(&cookie), &code, &state).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_state_older_than_ten_minutes_is_refused_with_400() {
    let t = TestApp::spawn().await;
    let (cookie, state, _) = t.login(None).await;
    let user: Uuid = state.split(':').nth(2).unwrap().parse().unwrap();
    let old = signer().sign(Utc::now().timestamp() - 601, "old-nonce", user);

    assert_refused(&t, Some(&cookie), &old, "expired").await;
}

#[tokio::test]
async fn a_replayed_state_is_refused_with_400_and_connects_nothing_more() {
    let t = TestApp::spawn().await;
    let code = t.facebook_user("carol", &[PAGE_A]);
    let (cookie, state, _) = t.login(None).await;
    let (status, body) = t.callback(Some(&cookie), &code, &state).await;
    assert_eq!(status, 200, "{body}");
    let before = t.count("SELECT count(*) FROM integrations").await;

    assert_refused(&t, Some(&cookie), &state, "replayed").await;

    assert_eq!(t.count("SELECT count(*) FROM integrations").await, before);
    assert_eq!(t.count("SELECT count(*) FROM oauth_state_nonces").await, 1);
}

#[tokio::test]
async fn another_sessions_state_is_refused_with_400() {
    let t = TestApp::spawn().await;
    let (_alice_cookie, alice_state, _) = t.login(None).await;
    let (bob_cookie, _bob_state, _) = t.login(None).await;

    assert_refused(&t, Some(&bob_cookie), &alice_state, "another session's").await;
    assert_refused(&t, None, &alice_state, "no session at all").await;
    assert_eq!(t.count("SELECT count(*) FROM integrations").await, 0);
}

#[tokio::test]
async fn logging_in_again_keeps_the_pending_session_and_its_uuid() {
    let t = TestApp::spawn().await;
    let (cookie, first, _) = t.login(None).await;

    let (_, second, _) = t.login(Some(&cookie)).await;

    assert_eq!(first.split(':').nth(2), second.split(':').nth(2));
    assert_ne!(first, second);
    // No user until a connect completes.
    assert_eq!(t.count("SELECT count(*) FROM users").await, 0);
    let stored: Vec<u8> =
        t.db.client()
            .await
            .query_one("SELECT id_sha256 FROM pending_sessions", &[])
            .await
            .unwrap()
            .get(0);
    let value = cookie.strip_prefix("session_id=").unwrap();
    assert_eq!(stored, pagesync_oauth_api::session::hash_id(value).to_vec());
}
