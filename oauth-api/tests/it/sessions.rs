//! Session fixation, pending (pre-login) sessions, expiry and pruning (issue 15, part 5).

use std::time::Duration;

use pagesync_oauth_api::session::hash_id;
use pagesync_testkit::wait;
use reqwest::Method;
use serde_json::Value;

use crate::support::{Auth, PAGE_A, PAGE_B, TestApp};

const LIST: &str = "/api/integrations/facebook";

fn uuid_of(state: &str) -> String {
    state.split(':').nth(2).unwrap().to_owned()
}

fn hash_of(cookie: &str) -> Vec<u8> {
    hash_id(cookie.strip_prefix("session_id=").unwrap()).to_vec()
}

fn page_ids(body: &Value) -> Vec<&str> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {body}"))
        .iter()
        .map(|i| i["page_id"].as_str().unwrap())
        .collect()
}

async fn list(t: &TestApp, cookie: &str) -> (u16, Value) {
    t.api(Method::GET, LIST, Auth::Session(cookie), None).await
}

/// Moves a stored session's expiry into the past, as time passing would.
async fn expire(t: &TestApp, table: &str, cookie: &str) {
    let n = t
        .db
        .client()
        .await
        .execute(
            &format!(
                "UPDATE {table} SET expires_at = now() - interval '1 second' WHERE id_sha256 = $1"
            ),
            &[&hash_of(cookie)],
        )
        .await
        .unwrap();
    assert_eq!(n, 1, "{table} holds the session");
}

#[tokio::test]
async fn a_session_planted_before_login_is_revoked_at_the_callback() {
    let t = TestApp::spawn().await;
    // The attacker's cookie-less login; the cookie is then planted in the victim's browser.
    let (planted, _, _) = t.login(None).await;
    let (_, state, _) = t.login(Some(&planted)).await;
    let code = t.facebook_user("victim", &[PAGE_A]);

    let (status, answer, set) = t.callback_setting(Some(&planted), &code, &state).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["user_uuid"], uuid_of(&state).as_str());
    let fresh = set.expect("the callback sets a new session cookie");
    assert!(fresh.starts_with("session_id="), "{fresh}");
    assert_ne!(fresh, planted);
    let (status, body) = list(&t, &planted).await;
    assert_eq!(status, 401, "the planted cookie is refused: {body}");
    let (status, body) = list(&t, &fresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(page_ids(&body), [PAGE_A.0]);
    assert_eq!(t.count("SELECT count(*) FROM pending_sessions").await, 0);
    assert_eq!(t.count("SELECT count(*) FROM sessions").await, 1);
    assert_eq!(t.count("SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn a_pending_session_grants_nothing() {
    let t = TestApp::spawn().await;
    let (pending, _, _) = t.login(None).await;

    for path in [LIST.to_owned(), format!("{LIST}/{}", PAGE_A.0)] {
        let (status, body) = t
            .api(Method::GET, &path, Auth::Session(&pending), None)
            .await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["error"], "unauthorized");
    }
}

#[tokio::test]
async fn connecting_again_rotates_the_session_and_keeps_the_user() {
    let t = TestApp::spawn().await;
    let (first, status, answer) = t.connect("dana", &[PAGE_A]).await;
    assert_eq!(status, 200, "{answer}");
    let (_, state, _) = t.login(Some(&first)).await;
    assert_eq!(answer["user_uuid"], uuid_of(&state).as_str());
    let code = t.facebook_user("dana-again", &[PAGE_B]);

    let (status, again, set) = t.callback_setting(Some(&first), &code, &state).await;

    assert_eq!(status, 200, "{again}");
    assert_eq!(again["user_uuid"], answer["user_uuid"]);
    let second = set.expect("a new session cookie");
    assert_ne!(second, first);
    assert_eq!(list(&t, &first).await.0, 401);
    let (status, body) = list(&t, &second).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(page_ids(&body), [PAGE_A.0, PAGE_B.0]);
    assert_eq!(t.count("SELECT count(*) FROM sessions").await, 1);
    assert_eq!(t.count("SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn two_callbacks_racing_on_one_session_bind_it_once() {
    let t = TestApp::spawn().await;
    let (pending, _, _) = t.login(None).await;
    let (_, s1, _) = t.login(Some(&pending)).await;
    let (_, s2, _) = t.login(Some(&pending)).await;
    let (c1, c2) = (
        t.facebook_user("racer-1", &[PAGE_A]),
        t.facebook_user("racer-2", &[PAGE_B]),
    );

    let (a, b) = tokio::join!(
        t.callback_setting(Some(&pending), &c1, &s1),
        t.callback_setting(Some(&pending), &c2, &s2),
    );

    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{} / {}", a.1, b.1);
    let loser = if a.0 == 400 { &a } else { &b };
    assert_eq!(loser.1["error"], "invalid_state", "{}", loser.1);
    assert!(loser.2.is_none(), "the loser sets no cookie");
    assert_eq!(t.count("SELECT count(*) FROM sessions").await, 1);
    assert_eq!(t.count("SELECT count(*) FROM integrations").await, 1);
}

#[tokio::test]
async fn cookie_less_logins_create_no_user_and_only_short_lived_pending_sessions() {
    let t = TestApp::spawn().await;
    let first = t.http.get(t.url("/facebook/login")).send().await.unwrap();
    let set = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    // The pending session lasts PENDING_SESSION_TTL (default 15 minutes), not 30 days.
    assert!(set.contains("Max-Age=900"), "{set}");
    for _ in 0..19 {
        t.login(None).await;
    }

    assert_eq!(t.count("SELECT count(*) FROM users").await, 0);
    assert_eq!(t.count("SELECT count(*) FROM sessions").await, 0);
    assert_eq!(t.count("SELECT count(*) FROM pending_sessions").await, 20);
    let long_lived = t
        .count("SELECT count(*) FROM pending_sessions WHERE expires_at > now() + interval '15 minutes'")
        .await;
    assert_eq!(long_lived, 0);
}

#[tokio::test]
async fn the_pending_session_ttl_is_configurable() {
    let t = TestApp::spawn_configured(|c| c.pending_session_ttl = Duration::from_secs(120)).await;

    let resp = t.http.get(t.url("/facebook/login")).send().await.unwrap();

    let set = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(set.contains("Max-Age=120"), "{set}");
}

#[tokio::test]
async fn expired_sessions_are_refused_before_they_are_pruned() {
    // Pruning far away: the refusal comes from the expiry itself.
    let t =
        TestApp::spawn_configured(|c| c.session_prune_interval = Duration::from_secs(3600)).await;
    let (cookie, status, answer) = t.connect("erin", &[PAGE_A]).await;
    assert_eq!(status, 200, "{answer}");
    let (pending, _, _) = t.login(None).await;
    let (_, state, _) = t.login(Some(&pending)).await;

    expire(&t, "sessions", &cookie).await;
    expire(&t, "pending_sessions", &pending).await;

    assert_eq!(list(&t, &cookie).await.0, 401);
    let code = t.facebook_user("late", &[PAGE_B]);
    let (status, body) = t.callback(Some(&pending), &code, &state).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_state");
    // An expired session does not carry its user into a new login either.
    let (_, fresh_state, _) = t.login(Some(&cookie)).await;
    assert_ne!(uuid_of(&fresh_state), answer["user_uuid"].as_str().unwrap());
}

#[tokio::test]
async fn expired_sessions_of_both_kinds_are_deleted_and_live_ones_kept() {
    let t =
        TestApp::spawn_configured(|c| c.session_prune_interval = Duration::from_millis(50)).await;
    let (live, _, _) = t.connect("fay", &[PAGE_A]).await;
    let (old, _, _) = t.connect("gus", &[PAGE_B]).await;
    let (pending_live, _, _) = t.login(None).await;
    let (pending_old, _, _) = t.login(None).await;

    expire(&t, "sessions", &old).await;
    expire(&t, "pending_sessions", &pending_old).await;

    wait::until(
        Duration::from_secs(10),
        "expired sessions pruned",
        || async {
            t.count("SELECT count(*) FROM sessions").await == 1
                && t.count("SELECT count(*) FROM pending_sessions").await == 1
        },
    )
    .await;
    let client = t.db.client().await;
    let kept = |table: &'static str, cookie: String| {
        let client = &client;
        async move {
            client
                .query_opt(
                    &format!("SELECT 1 FROM {table} WHERE id_sha256 = $1"),
                    &[&hash_of(&cookie)],
                )
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(kept("sessions", live.clone()).await);
    assert!(kept("pending_sessions", pending_live).await);
    assert_eq!(list(&t, &live).await.0, 200);
}
