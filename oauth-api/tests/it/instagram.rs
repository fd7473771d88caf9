//! Connecting a page also links its Instagram professional account (contract §8).

use pagesync_fake_graph::{Fault, LoggedRequest, Match};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, FakePage, PAGE_A, PAGE_B, TestApp};

const ACCOUNT: &str = "17841405822304914";
const LIST: &str = "/api/integrations/facebook";

/// A login whose pages are linked to Instagram accounts as given: (cookie, status, answer).
async fn connect_linked(
    t: &TestApp,
    name: &str,
    pages: &[FakePage],
    links: &[(&str, &str)],
) -> (String, u16, Value) {
    let code = t.facebook_user(name, pages);
    for (page, account) in links {
        t.fake.link_instagram(page, account);
    }
    let (pending, state, _) = t.login(None).await;
    let (status, body, set) = t.callback_setting(Some(&pending), &code, &state).await;
    (set.unwrap_or(pending), status, body)
}

async fn account_row(t: &TestApp) -> Option<(String, Option<String>, Option<String>)> {
    let client = t.db.client().await;
    let row = client
        .query_opt(
            "SELECT platform, linked_page_id, owner_user_id::text FROM pages WHERE page_id = $1",
            &[&ACCOUNT],
        )
        .await
        .unwrap()?;
    Some((row.get(0), row.get(1), row.get(2)))
}

fn linked_accounts(list: &Value) -> Vec<(String, Value)> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let page = i["page_id"].as_str().unwrap().to_owned();
            (page, i["instagram_account_id"].clone())
        })
        .collect()
}

fn asks_for_instagram(r: &LoggedRequest) -> bool {
    r.query
        .iter()
        .any(|(k, v)| k == "fields" && v.contains("instagram_business_account"))
}

#[tokio::test]
async fn facebook_login_links_a_pages_instagram_account_to_the_same_owner() {
    // Arrange: page A has an Instagram account, page B has none.
    let t = TestApp::spawn().await;

    // Act
    let (alice, status, answer) =
        connect_linked(&t, "alice", &[PAGE_A, PAGE_B], &[(PAGE_A.0, ACCOUNT)]).await;

    // Assert
    assert_eq!(status, 200, "{answer}");
    let user = answer["user_uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        account_row(&t).await,
        Some(("instagram".into(), Some(PAGE_A.0.into()), Some(user)))
    );
    let (status, list) = t.api(Method::GET, LIST, Auth::Session(&alice), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        linked_accounts(&list),
        [
            (PAGE_A.0.into(), json!(ACCOUNT)),
            (PAGE_B.0.into(), Value::Null)
        ]
    );
    let accounts = t
        .fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/me/accounts"))
        .unwrap();
    assert!(asks_for_instagram(&accounts), "{accounts:?}");
}

#[tokio::test]
async fn a_page_connected_by_hand_reads_its_account_with_the_page_token_and_can_lose_it() {
    let t = TestApp::spawn().await;
    t.fake.add_page(PAGE_A.0, PAGE_A.1, PAGE_A.2);
    t.fake.link_instagram(PAGE_A.0, ACCOUNT);
    let page_path = format!("{LIST}/{}", PAGE_A.0);
    let put = || {
        t.api(
            Method::PUT,
            &page_path,
            Auth::Operator,
            Some(json!({"access_token": PAGE_A.2})),
        )
    };

    let (status, created) = put().await;

    assert_eq!(status, 201, "{created}");
    assert_eq!(created["instagram_account_id"], ACCOUNT);
    assert!(
        t.fake
            .requests()
            .iter()
            .any(|r| r.path == format!("/{}", PAGE_A.0) && asks_for_instagram(r))
    );
    // Connected by an operator: no owner, for the page and its account alike.
    assert_eq!(
        account_row(&t).await,
        Some(("instagram".into(), Some(PAGE_A.0.into()), None))
    );

    // Facebook failing to say keeps the link; Facebook saying "none" removes it.
    // (Code 10: the login lacks instagram_basic.)
    t.fake.inject(
        Match::param("fields", "instagram_business_account"),
        Fault::Error {
            status: 400,
            code: 10,
            subcode: None,
            message: "(#10) This endpoint requires the 'instagram_basic' permission".into(),
        },
        None,
    );
    let (status, kept) = put().await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["instagram_account_id"], ACCOUNT);
    t.fake.clear_faults();
    t.fake
        .set_page_field(PAGE_A.0, "instagram_business_account", Value::Null);
    let (status, unlinked) = put().await;
    assert_eq!(status, 200, "{unlinked}");
    assert_eq!(unlinked["instagram_account_id"], Value::Null);
    assert_eq!(
        account_row(&t).await,
        Some(("instagram".into(), None, None))
    );
}

#[tokio::test]
async fn another_user_never_sees_the_account() {
    let t = TestApp::spawn().await;
    let (alice, _, _) = connect_linked(&t, "alice", &[PAGE_A], &[(PAGE_A.0, ACCOUNT)]).await;
    let (bob, status, _) = connect_linked(&t, "bob", &[PAGE_B], &[]).await;
    assert_eq!(status, 200);

    let (_, bob_list) = t.api(Method::GET, LIST, Auth::Session(&bob), None).await;
    let (_, alice_list) = t.api(Method::GET, LIST, Auth::Session(&alice), None).await;

    assert_eq!(linked_accounts(&bob_list), [(PAGE_B.0.into(), Value::Null)]);
    assert!(!bob_list.to_string().contains(ACCOUNT));
    assert_eq!(
        linked_accounts(&alice_list),
        [(PAGE_A.0.into(), json!(ACCOUNT))]
    );
    let (status, _) = t
        .api(
            Method::GET,
            &format!("{LIST}/{ACCOUNT}"),
            Auth::Session(&bob),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_integration_shows_webhook_coverage_per_platform_over_seven_days() {
    // Arrange: page A linked to the account; where the projector first saw each message.
    let t = TestApp::spawn().await;
    t.fake.add_page(PAGE_A.0, PAGE_A.1, PAGE_A.2);
    t.fake.link_instagram(PAGE_A.0, ACCOUNT);
    let (status, _) = t
        .api(
            Method::PUT,
            &format!("{LIST}/{}", PAGE_A.0),
            Auth::Operator,
            Some(json!({"access_token": PAGE_A.2})),
        )
        .await;
    assert_eq!(status, 201);
    let now = chrono::Utc::now().timestamp_millis();
    let old = now - 8 * 24 * 3600 * 1000;
    let seen = [
        (PAGE_A.0, "webhook", now),
        (PAGE_A.0, "webhook", now),
        (PAGE_A.0, "webhook", now),
        (PAGE_A.0, "poll", now),
        (PAGE_A.0, "send", now),
        (PAGE_A.0, "poll", old),
        (ACCOUNT, "poll", now),
    ];
    let client = t.db.client().await;
    for (i, (account, origin, at)) in seen.iter().enumerate() {
        client
            .execute(
                "INSERT INTO conversations (page_id, psid) VALUES ($1, 'c1') ON CONFLICT DO NOTHING",
                &[account],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO message_first_seen (mid, page_id, psid, origin, stream_seq, timestamp_ms)
                 VALUES ($1, $2, 'c1', $3, $4, $5)",
                &[&format!("m{i}"), account, origin, &(i as i64), at],
            )
            .await
            .unwrap();
    }

    // Act
    let (status, list) = t.api(Method::GET, LIST, Auth::Operator, None).await;

    // Assert
    assert_eq!(status, 200);
    assert_eq!(
        list["data"][0]["webhook_coverage"],
        json!({"window_days": 7,
               "messenger": {"webhook": 3, "poll_only": 1, "send": 1, "ratio": 0.75},
               "instagram": {"webhook": 0, "poll_only": 1, "send": 0, "ratio": 0.0}})
    );
}
