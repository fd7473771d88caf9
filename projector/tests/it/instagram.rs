//! Instagram conversations (contract §8): their own account rows, folders and
//! conversations, apart from Messenger ones with the same customer id.

use pagesync_schema::{Event, EventType, Platform, Source};
use serde_json::{Value, json};

use crate::support::{TestProjector, event, message, tree};

const ACCOUNT: &str = "17841405822304914";
const PAGE: &str = "101368371725791";
/// The same id on both platforms: scoped ids are numbers that may well collide.
const CUSTOMER: &str = "6485239621563051";
const T: i64 = 1_569_262_485_349;

fn instagram(mut e: Event) -> Event {
    e.platform = Platform::Instagram;
    e
}

fn ig_message(source: Source, mid: &str, ts: i64, text: &str) -> Event {
    instagram(message(source, ACCOUNT, CUSTOMER, mid, ts, text))
}

fn file(p: &TestProjector, relative: String) -> Vec<Value> {
    let bytes =
        std::fs::read(p.data_dir().join(&relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
    serde_json::from_slice(&bytes).unwrap()
}

fn ig_file() -> String {
    format!("instagram/{ACCOUNT}/conversations/{CUSTOMER}.json")
}

#[tokio::test]
async fn an_instagram_conversation_gets_its_account_row_and_its_own_folder() {
    // Arrange
    let p = TestProjector::new().await;
    let echo = instagram(event(
        EventType::MessageEcho,
        Source::Ingest,
        "ig_echo",
        ACCOUNT,
        Some(CUSTOMER),
        T + 1,
        json!({"sender": {"id": ACCOUNT}, "recipient": {"id": CUSTOMER}, "timestamp": T + 1,
               "message": {"mid": "ig_echo", "text": "yes", "is_echo": true}}),
    ));
    let seen = instagram(event(
        EventType::Read,
        Source::Ingest,
        "read:abc",
        ACCOUNT,
        Some(CUSTOMER),
        T + 2,
        json!({"sender": {"id": CUSTOMER}, "recipient": {"id": ACCOUNT}, "timestamp": T + 2,
               "read": {"mid": "ig_echo"}}),
    ));
    let unsend = instagram(event(
        EventType::Message,
        Source::Ingest,
        "message:def",
        ACCOUNT,
        Some(CUSTOMER),
        T + 3,
        json!({"sender": {"id": CUSTOMER}, "recipient": {"id": ACCOUNT}, "timestamp": T + 3,
               "message": {"mid": "ig_1", "is_deleted": true}}),
    ));

    // Act
    p.publish(&[
        ig_message(Source::Ingest, "ig_1", T, "hi"),
        echo,
        seen,
        unsend,
    ])
    .await;
    let report = p.drain().await;

    // Assert
    assert_eq!(report.dead_letters, 0);
    let items = file(&p, ig_file());
    let mids: Vec<&Value> = items.iter().map(|i| &i["message"]["mid"]).collect();
    assert_eq!(mids, [&json!("ig_1"), &json!("ig_echo"), &json!("ig_1")]);
    assert_eq!(items[2]["message"]["is_deleted"], true);
    assert!(!p.data_dir().join("facebook").exists());
    assert_eq!(
        p.count(&format!(
            "SELECT count(*) FROM pages WHERE page_id = '{ACCOUNT}' AND platform = 'instagram'"
        ))
        .await,
        1
    );
    assert_eq!(
        p.count(
            "SELECT count(*) FROM conversations WHERE platform = 'instagram' AND message_count = 2"
        )
        .await,
        1
    );
    assert_eq!(
        p.count(&format!(
            "SELECT read_watermark FROM receipts WHERE page_id = '{ACCOUNT}'"
        ))
        .await,
        T + 2
    );
}

#[tokio::test]
async fn an_instagram_and_a_messenger_conversation_with_the_same_customer_id_stay_apart() {
    let p = TestProjector::new().await;
    p.publish(&[
        ig_message(Source::Ingest, "ig_1", T, "on instagram"),
        message(Source::Ingest, PAGE, CUSTOMER, "m_1", T, "on messenger"),
    ])
    .await;
    p.drain().await;

    let ig = file(&p, ig_file());
    let fb = file(&p, format!("facebook/{PAGE}/conversations/{CUSTOMER}.json"));
    assert_eq!(ig.len(), 1);
    assert_eq!(fb.len(), 1);
    assert_eq!(ig[0]["message"]["text"], "on instagram");
    assert_eq!(fb[0]["message"]["text"], "on messenger");
    let rows = p
        .db
        .client()
        .await
        .query(
            "SELECT c.page_id, c.platform, p.platform FROM conversations c JOIN pages p USING (page_id)
             WHERE c.psid = $1 ORDER BY c.page_id",
            &[&CUSTOMER],
        )
        .await
        .unwrap();
    let rows: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            (PAGE.into(), "messenger".into(), "messenger".into()),
            (ACCOUNT.into(), "instagram".into(), "instagram".into())
        ]
    );
}

#[tokio::test]
async fn webhook_and_poll_copies_of_an_instagram_message_converge_in_any_order() {
    let poll = ig_message(Source::Poller, "ig_1", T, "from poll");
    let hook = ig_message(Source::Ingest, "ig_1", T, "from webhook");
    let mut files = Vec::new();
    for order in [[poll.clone(), hook.clone()], [hook, poll]] {
        let p = TestProjector::new().await;
        for e in order {
            p.publish_again(&[e]).await;
            p.drain().await;
        }
        files.push(tree(p.data_dir()));
        assert_eq!(
            p.count("SELECT count(*) FROM messages WHERE source = 'webhook'")
                .await,
            1
        );
    }
    assert_eq!(files[0], files[1]);
    let items: Vec<Value> = serde_json::from_slice(files[0].values().next().unwrap()).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["message"]["text"], "from webhook");
}

#[tokio::test]
async fn an_instagram_accounts_files_move_under_the_owner_of_its_page() {
    // Arrange: the account was seen before anyone connected it.
    let p = TestProjector::new().await;
    p.publish(&[ig_message(Source::Ingest, "ig_1", T, "hi")])
        .await;
    p.drain().await;
    let owner = uuid::Uuid::new_v4();
    let client = p.db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO pages (page_id, owner_user_id) VALUES ('{PAGE}', '{owner}');
             UPDATE pages SET owner_user_id = '{owner}', linked_page_id = '{PAGE}'
             WHERE page_id = '{ACCOUNT}'"
        ))
        .await
        .unwrap();

    // Act
    p.publish(&[ig_message(Source::Ingest, "ig_2", T + 1, "again")])
        .await;
    p.drain().await;

    // Assert
    let moved = file(&p, format!("users/{owner}/{}", ig_file()));
    assert_eq!(moved.len(), 2);
    assert!(!p.data_dir().join("instagram").join(ACCOUNT).exists());
}
