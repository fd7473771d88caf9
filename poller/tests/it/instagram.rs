//! A page's linked Instagram account, polled through the page (contract §8).

use chrono::{DateTime, Utc};
use pagesync_fake_graph::{FakeMessage, Fault, Match};
use pagesync_poller::PageOutcome;
use pagesync_schema::{Event, EventType, Platform};
use serde_json::{Value, json};

use super::{PAGE, TestApp, at};

const ACCOUNT: &str = "17841405822304914";
const IGSID: &str = "6485239621563051";

/// A poller whose page has a linked Instagram account with one conversation of a
/// customer message and the business's answer, beside one Messenger message.
async fn linked() -> TestApp {
    let t = TestApp::spawn().await;
    t.fake.link_instagram(PAGE, ACCOUNT);
    t.fake.add_instagram_message(
        PAGE,
        IGSID,
        FakeMessage::customer("ig_m_1", "is this in stock?", at(3, 0)),
    );
    t.fake
        .add_instagram_message(PAGE, IGSID, FakeMessage::page("ig_m_2", "yes!", at(3, 1)));
    t.fake.add_message(
        PAGE,
        "901",
        FakeMessage::customer("m_fb_1", "hello", at(2, 0)),
    );
    t.db.client()
        .await
        .execute(
            "UPDATE integrations SET instagram_account_id = $2 WHERE page_id = $1",
            &[&PAGE, &ACCOUNT],
        )
        .await
        .unwrap();
    t
}

async fn instagram_checkpoint(t: &TestApp) -> Option<DateTime<Utc>> {
    t.db.client()
        .await
        .query_one(
            "SELECT instagram_newest_updated_time FROM poll_checkpoints WHERE page_id = $1",
            &[&PAGE],
        )
        .await
        .unwrap()
        .get(0)
}

fn by_id<'a>(events: &'a [Event], id: &str) -> &'a Event {
    events.iter().find(|e| e.id.as_str() == id).unwrap()
}

#[tokio::test]
async fn a_linked_accounts_conversations_are_published_as_instagram_events_of_the_account() {
    // Arrange
    let t = linked().await;

    // Act
    let report = t.cycle().await;

    // Assert
    assert!(report.all_succeeded(), "{report:?}");
    assert_eq!(t.fake.count("/conversations"), 2, "one read per platform");
    assert!(
        t.fake
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/conversations")
                && r.query.contains(&("platform".into(), "instagram".into())))
    );
    let events = t.nats.events().await;
    let customer = by_id(&events, "ig_m_1");
    assert_eq!(customer.event_type, EventType::Message);
    assert_eq!(customer.platform, Platform::Instagram);
    assert_eq!(customer.page_id.as_ref().unwrap().as_str(), ACCOUNT);
    assert_eq!(customer.psid.as_ref().unwrap().as_str(), IGSID);
    assert_eq!(customer.source.as_str(), "pagesync/poller");
    let data: Value = serde_json::from_str(customer.data.get()).unwrap();
    assert_eq!(
        data,
        json!({"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT},
               "timestamp": at(3, 0).timestamp_millis(),
               "message": {"mid": "ig_m_1", "text": "is this in stock?"}})
    );
    let answer = by_id(&events, "ig_m_2");
    assert_eq!(answer.event_type, EventType::MessageEcho);
    assert_eq!(answer.psid.as_ref().unwrap().as_str(), IGSID);
    let messenger = by_id(&events, "m_fb_1");
    assert_eq!(messenger.platform, Platform::Messenger);
    assert_eq!(messenger.page_id.as_ref().unwrap().as_str(), PAGE);
    let subjects: Vec<String> = t
        .nats
        .messages()
        .await
        .into_iter()
        .map(|m| m.subject)
        .collect();
    assert!(subjects.contains(&format!("{}.{ACCOUNT}.message_echo", t.nats.prefix)));
    // Each platform has its own checkpoint.
    assert_eq!(t.checkpoint().await, Some(at(2, 0)));
    assert_eq!(instagram_checkpoint(&t).await, Some(at(3, 1)));
}

#[tokio::test]
async fn instagram_polls_are_incremental_on_their_own_checkpoint() {
    let t = linked().await;
    t.cycle().await;
    let after_backfill = t.nats.message_count().await;

    let second = t.cycle().await;
    assert_eq!(second.stored(), 0);
    assert_eq!(t.nats.message_count().await, after_backfill);

    t.fake.add_instagram_message(
        PAGE,
        IGSID,
        FakeMessage::customer("ig_m_3", "great", at(9, 0)),
    );
    let third = t.cycle().await;
    assert_eq!(third.stored(), 1);
    assert_eq!(instagram_checkpoint(&t).await, Some(at(9, 0)));
    assert_eq!(t.checkpoint().await, Some(at(2, 0)), "Messenger's stays");
}

#[tokio::test]
async fn a_token_error_on_the_instagram_read_marks_the_page_needs_reauth_and_keeps_both_checkpoints()
 {
    let t = linked().await;
    // Messenger's read succeeds, Instagram's is refused.
    t.fake.inject(
        Match::param("platform", "instagram"),
        Fault::TokenInvalid { subcode: Some(460) },
        None,
    );

    let report = t.cycle().await;

    assert_eq!(report.outcome(PAGE), Some(&PageOutcome::NeedsReauth));
    assert_eq!(
        t.integration("status").await.as_deref(),
        Some("needs_reauth")
    );
    assert_eq!(t.checkpoint().await, None);
    let refused = t
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.status == 400)
        .count();
    assert_eq!(refused, 1, "no retries of a 190");
    assert!(
        t.nats
            .events()
            .await
            .iter()
            .all(|e| e.platform == Platform::Messenger)
    );
}
