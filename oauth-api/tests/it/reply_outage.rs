//! A reply Facebook accepted while NATS is down: the message is out, its event
//! is not, and the answer (503 `echo_not_published`) is kept under its key so a
//! retry does not send the message again.

use chrono::Utc;
use pagesync_crypto::EncryptionKey;
use pagesync_fake_graph::{FakeGraph, FakeMessage};
use pagesync_oauth_api::App;
use pagesync_runtime::CancellationToken;
use pagesync_testkit::private_nats::PrivateNats;
use pagesync_testkit::{TestDb, TestNats};
use serde_json::{Value, json};

use crate::support::{OPERATOR_TOKEN, PAGE_A, config};

#[tokio::test]
async fn a_reply_sent_while_nats_is_down_is_503_and_kept_under_its_key() {
    let mut server = PrivateNats::start().await;
    let (nats, db, fake) = (
        TestNats::on(&server.url()).await,
        TestDb::new().await,
        FakeGraph::start().await,
    );
    nats.ensure_stream().await;
    fake.add_page(PAGE_A.0, PAGE_A.1, PAGE_A.2);
    let (_, key) = EncryptionKey::generate();
    let cfg = config(
        &nats,
        &db,
        &fake,
        &key,
        "",
        "http://127.0.0.1:9/facebook/webhook",
    );
    let app = App::build(cfg).await.expect("oauth-api starts");
    let base = format!("http://{}", app.local_addr());
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{base}/api/integrations/facebook/{}", PAGE_A.0))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"access_token": PAGE_A.2}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let at = Utc::now();
    fake.add_message(PAGE_A.0, "c-1", FakeMessage::customer("m_c1", "hi", at));
    db.client()
        .await
        .batch_execute(&format!(
            "INSERT INTO conversations (page_id, psid, last_in_ms) VALUES ('{page}', 'c-1', {ms});
             INSERT INTO conversation_events (item_id, page_id, psid, event_type, source, source_rank,
                 timestamp_ms, in_file, data, stream_seq, direction, text)
             VALUES ('m_c1', '{page}', 'c-1', 'message', 'pagesync/ingest', 0, {ms}, true, '{{}}', 1, 'in', 'hi')",
            page = PAGE_A.0,
            ms = at.timestamp_millis()
        ))
        .await
        .unwrap();
    server.stop();

    let send = || async {
        let r = http
            .post(format!(
                "{base}/api/conversations/{}/c-1/messages",
                PAGE_A.0
            ))
            .bearer_auth(OPERATOR_TOKEN)
            .header("idempotency-key", "outage-1")
            .json(&json!({"text": "sent in the dark"}))
            .send()
            .await
            .unwrap();
        let replayed = r.headers().contains_key("idempotent-replayed");
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap(),
            replayed,
        )
    };
    let (status, body, _) = send().await;
    let (again, again_body, replayed) = send().await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "echo_not_published");
    let sent = fake.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(body["mid"], sent[0].message_id.as_str());
    assert_eq!((again, &again_body, replayed), (503, &body, true));
    assert_eq!(fake.sent_messages().len(), 1, "not sent twice");
    stop.cancel();
}
