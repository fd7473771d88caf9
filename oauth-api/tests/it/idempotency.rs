//! `Idempotency-Key` on replies: at most one Send API call per caller and key.

use chrono::{Duration, Utc};
use pagesync_fake_graph::{Fault, Match};
use reqwest::Method;
use serde_json::json;

use crate::inbox_write_support::{CUSTOMER, connect_by_hand, customer_writes, reply, send_calls};
use crate::support::{PAGE_A, TestApp};

async fn conversation_configured(
    configure: impl FnOnce(&mut pagesync_oauth_api::Config),
) -> TestApp {
    let t = TestApp::spawn_with_pipeline_configured(configure).await;
    connect_by_hand(&t, PAGE_A).await;
    customer_writes(
        &t,
        PAGE_A.0,
        CUSTOMER,
        "m_in_idem",
        Utc::now() - Duration::hours(1),
    )
    .await;
    t
}

async fn conversation() -> TestApp {
    conversation_configured(|_| {}).await
}

#[tokio::test]
async fn a_repeated_request_gets_the_first_answer_without_a_second_send() {
    let t = conversation().await;
    let body = json!({"text": "only once"});

    let first = reply(&t, PAGE_A.0, CUSTOMER, Some("order-17-reply"), &body).await;
    // The same body with its keys in another order and other spacing is the same request.
    let again = reply(
        &t,
        PAGE_A.0,
        CUSTOMER,
        Some("order-17-reply"),
        &json!({"text": "only once"}),
    )
    .await;

    assert_eq!(first.0, 201, "{}", first.1);
    assert!(!first.2, "the first answer is not a replay");
    assert_eq!((again.0, &again.1), (201, &first.1));
    assert!(again.2, "Idempotent-Replayed: true");
    assert_eq!(send_calls(&t), 1);
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_422_and_sends_nothing() {
    let t = conversation().await;
    let first = reply(&t, PAGE_A.0, CUSTOMER, Some("k-1"), &json!({"text": "a"})).await;
    assert_eq!(first.0, 201);

    let (status, body, _) = reply(&t, PAGE_A.0, CUSTOMER, Some("k-1"), &json!({"text": "b"})).await;

    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "idempotency_key_reused");
    assert_eq!(send_calls(&t), 1);
}

#[tokio::test]
async fn two_requests_with_one_key_at_once_call_facebook_once() {
    let t = conversation().await;
    t.fake.set_latency(std::time::Duration::from_millis(400));
    let body = json!({"text": "double click"});

    let (a, b) = tokio::join!(
        reply(&t, PAGE_A.0, CUSTOMER, Some("dbl"), &body),
        reply(&t, PAGE_A.0, CUSTOMER, Some("dbl"), &body)
    );

    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{} {}", a.1, b.1);
    let conflict = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(conflict["error"], "in_progress");
    assert_eq!(send_calls(&t), 1);
    let sent = if a.0 == 201 { &a.1 } else { &b.1 };
    let retry = reply(&t, PAGE_A.0, CUSTOMER, Some("dbl"), &body).await;
    assert_eq!((retry.0, &retry.1), (201, sent));
    assert_eq!(send_calls(&t), 1);
}

#[tokio::test]
async fn a_502_is_not_kept_so_a_retry_with_the_key_sends() {
    let t = conversation().await;
    t.fake.inject(
        Match::MethodPath(Method::POST, "/messages".into()),
        Fault::ServerError(503),
        None,
    );
    let body = json!({"text": "eventually"});
    let failed = reply(&t, PAGE_A.0, CUSTOMER, Some("k-502"), &body).await;
    assert_eq!(failed.0, 502, "{}", failed.1);

    t.fake.clear_faults();
    let retried = reply(&t, PAGE_A.0, CUSTOMER, Some("k-502"), &body).await;

    assert_eq!(retried.0, 201, "{}", retried.1);
    assert!(!retried.2);
    assert_eq!(t.fake.sent_messages().len(), 1);
}

#[tokio::test]
async fn a_facebook_refusal_is_kept_and_replayed() {
    let t = conversation().await;
    t.fake.inject(
        Match::MethodPath(Method::POST, "/messages".into()),
        Fault::Error {
            status: 400,
            code: 551,
            subcode: Some(1545041),
            message: "(#551) This person isn't available right now.".into(),
        },
        Some(1),
    );
    let body = json!({"text": "are you there"});
    let first = reply(&t, PAGE_A.0, CUSTOMER, Some("k-551"), &body).await;
    let again = reply(&t, PAGE_A.0, CUSTOMER, Some("k-551"), &body).await;

    assert_eq!(first.0, 422);
    assert_eq!((again.0, &again.1, again.2), (422, &first.1, true));
    assert_eq!(send_calls(&t), 1);
}

#[tokio::test]
async fn keys_expire_after_a_day_and_are_pruned() {
    let t = conversation_configured(|c| {
        c.session_prune_interval = std::time::Duration::from_millis(50);
    })
    .await;
    let body = json!({"text": "hello"});
    assert_eq!(
        reply(&t, PAGE_A.0, CUSTOMER, Some("day-old"), &body)
            .await
            .0,
        201
    );
    let client = t.db.client().await;

    // A day later the key is free again: the same request is sent anew.
    client
        .execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'",
            &[],
        )
        .await
        .unwrap();
    let later = reply(&t, PAGE_A.0, CUSTOMER, Some("day-old"), &body).await;
    assert_eq!((later.0, later.2), (201, false));
    assert_eq!(send_calls(&t), 2);

    // A two-day-old key (of some user) goes at the pruner's next round.
    client
        .execute(
            "INSERT INTO idempotency_keys (caller, key, request_sha256, status, body, created_at)
             VALUES ('3c1d3c55-7a4e-4ad5-9a4e-5b1f4f9a0c01', 'stale', decode(repeat('00', 32), 'hex'),
                     201, '{\"mid\": \"m_x\"}', now() - interval '2 days')",
            &[],
        )
        .await
        .unwrap();
    pagesync_testkit::wait::until(
        std::time::Duration::from_secs(5),
        "the stale key pruned",
        || async {
            t.count("SELECT count(*) FROM idempotency_keys WHERE key = 'stale'")
                .await
                == 0
        },
    )
    .await;
    assert_eq!(
        t.count("SELECT count(*) FROM idempotency_keys WHERE key = 'day-old'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_malformed_key_is_400() {
    let t = conversation().await;
    let body = json!({"text": "hi"});
    for bad in ["", "has space", &"k".repeat(256)] {
        let (status, answer, _) = reply(&t, PAGE_A.0, CUSTOMER, Some(bad), &body).await;
        assert_eq!(status, 400, "{bad:?}: {answer}");
        assert_eq!(answer["error"], "invalid_idempotency_key");
    }
    assert_eq!(send_calls(&t), 0);
}

#[tokio::test]
async fn a_local_refusal_does_not_keep_the_key() {
    let t = TestApp::spawn_with_pipeline().await;
    connect_by_hand(&t, PAGE_A).await;
    customer_writes(
        &t,
        PAGE_A.0,
        CUSTOMER,
        "m_old",
        Utc::now() - Duration::hours(30),
    )
    .await;

    let (status, body, _) = reply(
        &t,
        PAGE_A.0,
        CUSTOMER,
        Some("late-1"),
        &json!({"text": "sorry"}),
    )
    .await;

    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("window_closed"))
    );
    assert_eq!(t.count("SELECT count(*) FROM idempotency_keys").await, 0);
}

#[tokio::test]
async fn two_users_keys_of_one_name_are_two_keys() {
    let t = TestApp::spawn_with_pipeline().await;
    let (alice, status, body) = t.connect("alice", &[PAGE_A]).await;
    assert_eq!(status, 200, "{body}");
    customer_writes(&t, PAGE_A.0, CUSTOMER, "m_shared", Utc::now()).await;
    let body = json!({"text": "same words"});

    let by_alice = t
        .http
        .post(t.url(&format!(
            "/api/conversations/{}/{CUSTOMER}/messages",
            PAGE_A.0
        )))
        .header("cookie", &alice)
        .header("idempotency-key", "shared-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    let by_alice = t.read(by_alice).await;
    let by_operator = reply(&t, PAGE_A.0, CUSTOMER, Some("shared-key"), &body).await;

    assert_eq!(by_alice.0, 201, "{}", by_alice.1);
    assert_eq!((by_operator.0, by_operator.2), (201, false));
    assert_ne!(by_alice.1["mid"], by_operator.1["mid"]);
    assert_eq!(send_calls(&t), 2);
}
