//! The Graph API client against the fake Graph API.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use pagesync_fake_graph::{FakeGraph, FakeMessage, Fault, Match};
use pagesync_graph::{
    AccessToken, GraphClient, GraphConfig, GraphError, MessagingType, RetryPolicy, THROTTLE_CODES,
};
use secrecy::SecretString;

mod send;

const PAGE: &str = "101";
const TOKEN: &str = "EAAB-page-token-s3cr3t";

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retries: 3,
        throttle_pause: Duration::from_millis(30),
        max_throttle_wait: Duration::from_secs(5),
        slow_down_at_percent: 90,
    }
}

fn client(fake: &FakeGraph) -> GraphClient {
    let mut cfg = GraphConfig::new(fake.base_url().parse().unwrap());
    cfg.app_id = Some(FakeGraph::APP_ID.into());
    cfg.app_secret = Some(SecretString::from(FakeGraph::APP_SECRET));
    cfg.retry = fast_retry();
    cfg.per_page_interval = None;
    GraphClient::new(cfg).unwrap()
}

async fn fake_with_page() -> FakeGraph {
    let fake = FakeGraph::start().await;
    fake.add_page(PAGE, "Dog Page", TOKEN);
    fake
}

fn at(min: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 10, min, 0).unwrap()
}

#[tokio::test]
async fn conversations_are_paged_to_the_end_through_an_empty_page_with_nested_messages() {
    let fake = fake_with_page().await;
    fake.set_conversations_page_size(2);
    fake.set_nested_page_size(3);
    fake.set_empty_page_before_last(true);
    for c in 0..3 {
        for m in 0..5 {
            fake.add_message(
                PAGE,
                &format!("p{c}"),
                FakeMessage::customer(&format!("m_{c}_{m}"), "hi", at(c * 10 + m)),
            );
        }
    }
    let graph = client(&fake);
    let token = AccessToken::new(TOKEN);

    let convs = graph
        .conversations(PAGE, &token, 20)
        .collect_all()
        .await
        .unwrap();

    assert_eq!(
        convs.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["t_p2", "t_p1", "t_p0"]
    );
    let first = convs[0].messages.as_ref().unwrap();
    assert_eq!(first.data.len(), 3);
    let next = first.next().expect("nested next link");
    let rest = graph
        .messages_after(next, &token, PAGE)
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[1].id, "m_2_0");
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path.contains("/conversations") && r.param("e").is_some())
    );
}

#[tokio::test]
async fn http_429_is_retried_until_success() {
    let fake = fake_with_page().await;
    fake.inject(Match::Any, Fault::Http(429), Some(2));
    let page = client(&fake)
        .page(PAGE, &AccessToken::new(TOKEN))
        .await
        .unwrap();
    assert_eq!(page.fields["name"], "Dog Page");
    assert_eq!(fake.count(PAGE), 3);
}

#[tokio::test]
async fn each_throttling_code_is_waited_out_then_retried() {
    for code in THROTTLE_CODES {
        let fake = fake_with_page().await;
        fake.inject(
            Match::Any,
            Fault::Throttle {
                code,
                regain_minutes: 0,
            },
            Some(1),
        );
        let page = client(&fake).page(PAGE, &AccessToken::new(TOKEN)).await;
        assert!(page.is_ok(), "code {code}: {page:?}");
        assert_eq!(fake.count(PAGE), 2, "code {code}");
    }
}

#[tokio::test]
async fn a_throttle_longer_than_the_allowed_wait_stops_calls_for_that_page() {
    let fake = fake_with_page().await;
    fake.inject(
        Match::Any,
        Fault::Throttle {
            code: 80001,
            regain_minutes: 30,
        },
        Some(1),
    );
    let graph = client(&fake);
    let token = AccessToken::new(TOKEN);

    let first = graph.page(PAGE, &token).await.unwrap_err();
    let second = graph.subscribed_apps(PAGE, &token).await.unwrap_err();

    assert!(
        matches!(first, GraphError::Throttled { code: Some(80001), retry_after: Some(d), .. } if d == Duration::from_secs(1800))
    );
    assert!(matches!(second, GraphError::Throttled { .. }));
    assert_eq!(fake.requests().len(), 1, "no call while throttled");
}

#[tokio::test]
async fn code_190_fails_at_once_without_retries() {
    let fake = fake_with_page().await;
    fake.revoke_token(PAGE);
    let err = client(&fake)
        .page(PAGE, &AccessToken::new(TOKEN))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        GraphError::TokenInvalid {
            subcode: Some(460),
            ..
        }
    ));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_and_give_up_after_the_budget() {
    let fake = fake_with_page().await;
    fake.inject(Match::Any, Fault::ServerError(500), Some(1));
    assert!(
        client(&fake)
            .page(PAGE, &AccessToken::new(TOKEN))
            .await
            .is_ok()
    );

    let fake = fake_with_page().await;
    fake.inject(Match::Any, Fault::ServerError(503), None);
    let err = client(&fake)
        .page(PAGE, &AccessToken::new(TOKEN))
        .await
        .unwrap_err();
    assert!(matches!(err, GraphError::Server { status: 503 }));
    assert_eq!(fake.requests().len(), 4, "first attempt and 3 retries");
}

#[tokio::test]
async fn an_unreachable_api_is_a_network_error_without_the_token() {
    let mut cfg = GraphConfig::new("http://127.0.0.1:9/v26.0".parse().unwrap());
    cfg.retry = fast_retry();
    let err = GraphClient::new(cfg)
        .unwrap()
        .page(PAGE, &AccessToken::new(TOKEN))
        .await
        .unwrap_err();
    assert!(matches!(err, GraphError::Network(_)));
    assert!(!format!("{err} {err:?}").contains(TOKEN));
}

#[tokio::test]
async fn permission_errors_are_clear_and_not_retried() {
    let fake = fake_with_page().await;
    fake.inject(
        Match::Any,
        Fault::Error {
            status: 403,
            code: 200,
            subcode: None,
            message: "(#200) Requires pages_messaging permission".into(),
        },
        None,
    );
    let err = client(&fake)
        .page(PAGE, &AccessToken::new(TOKEN))
        .await
        .unwrap_err();
    assert!(matches!(err, GraphError::Permission { code: 200, .. }));
    assert!(err.to_string().contains("pages_messaging"));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_lost_subscription_is_seen_and_restored() {
    let fake = fake_with_page().await;
    fake.set_subscribed(PAGE, false);
    let graph = client(&fake);
    let token = AccessToken::new(TOKEN);

    assert!(
        graph
            .subscribed_apps(PAGE, &token)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        graph
            .subscribe_app(PAGE, &token, &pagesync_graph::SUBSCRIBED_FIELDS)
            .await
            .unwrap()
    );

    let apps = graph.subscribed_apps(PAGE, &token).await.unwrap();
    assert_eq!(apps[0].id, FakeGraph::APP_ID);
    assert_eq!(apps[0].subscribed_fields.len(), 9);
}

#[tokio::test]
async fn login_code_and_long_lived_exchange_lead_to_every_page_of_the_user() {
    let fake = FakeGraph::start().await;
    for i in 0..3 {
        fake.add_page(&format!("20{i}"), &format!("Page {i}"), &format!("tok{i}"));
    }
    fake.set_accounts_page_size(2);
    fake.add_user("user-short", &["200", "201", "202"]);
    fake.add_login_code("code-1", "user-short");
    let graph = client(&fake);

    let short = graph
        .exchange_code("code-1", "https://app/cb")
        .await
        .unwrap();
    let long = graph
        .exchange_long_lived(&short.access_token)
        .await
        .unwrap();
    let pages = graph.accounts(&long.access_token).await.unwrap();

    assert_eq!(pages.len(), 3);
    assert_eq!(pages[2].access_token.expose(), "tok2");
    assert!(matches!(
        graph
            .exchange_code("code-1", "https://app/cb")
            .await
            .unwrap_err(),
        GraphError::Api {
            code: Some(100),
            subcode: Some(36007),
            ..
        }
    ));
}

#[tokio::test]
async fn the_send_api_returns_the_message_id_and_refuses_outside_the_window() {
    let fake = fake_with_page().await;
    fake.add_message(
        PAGE,
        "recent",
        FakeMessage::customer("m_r", "hi", Utc::now()),
    );
    fake.add_message(
        PAGE,
        "old",
        FakeMessage::customer("m_o", "hi", Utc::now() - chrono::Duration::days(3)),
    );
    let graph = client(&fake);
    let token = AccessToken::new(TOKEN);

    let sent = graph
        .send_text(PAGE, &token, "recent", "hello", MessagingType::Response)
        .await
        .unwrap();
    let refused = graph
        .send_text(PAGE, &token, "old", "hello", MessagingType::Response)
        .await
        .unwrap_err();
    let tagged = graph
        .send_text(
            PAGE,
            &token,
            "old",
            "hello",
            MessagingType::MessageTag("HUMAN_AGENT"),
        )
        .await;

    assert!(sent.message_id.starts_with("m_sent_"));
    assert!(matches!(
        refused,
        GraphError::Permission {
            code: 10,
            subcode: Some(2018278),
            ..
        }
    ));
    assert!(tagged.is_ok());
    assert_eq!(fake.sent_messages().len(), 2);
}

#[test]
fn the_token_never_appears_in_captured_logs() {
    let logs = pagesync_testkit::logs::capture("trace");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fake = fake_with_page().await;
        fake.set_conversations_page_size(1);
        fake.add_message(PAGE, "a", FakeMessage::customer("m_a", "hi", at(1)));
        fake.add_message(PAGE, "b", FakeMessage::customer("m_b", "hi", at(2)));
        fake.inject(
            Match::path("conversations"),
            Fault::ServerError(500),
            Some(1),
        );
        let graph = client(&fake);
        let token = AccessToken::new(TOKEN);
        graph
            .conversations(PAGE, &token, 20)
            .collect_all()
            .await
            .unwrap();
        fake.revoke_token(PAGE);
        let err = graph.page(PAGE, &token).await.unwrap_err();
        tracing::error!(error = %err, debug = ?err, token = ?token, "logged by a caller");
    });
    // The capture is global: it holds every test of this binary, and all use TOKEN.
    let logs = logs.text();
    assert!(logs.contains("Graph call"), "debug logs were captured");
    assert!(!logs.contains(TOKEN), "{logs}");
}
