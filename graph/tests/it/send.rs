//! The Send API call: attachments by URL, and what is retried (only what Facebook
//! certainly did not take).

use std::time::Duration;

use chrono::Utc;
use pagesync_fake_graph::{FakeMessage, Fault, Match};
use pagesync_graph::{
    AccessToken, AttachmentKind, GraphClient, GraphConfig, GraphError, MessagingType,
    OutgoingMessage,
};
use reqwest::Method;
use serde_json::{Value, json};

use super::{PAGE, TOKEN, client, fake_with_page};

fn sends(fake: &pagesync_fake_graph::FakeGraph) -> Vec<Value> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == Method::POST && r.path.ends_with("/messages"))
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

async fn send_hi(
    fake: &pagesync_fake_graph::FakeGraph,
) -> Result<pagesync_graph::SendResult, GraphError> {
    client(fake)
        .send_text(
            PAGE,
            &AccessToken::new(TOKEN),
            "c1",
            "hi",
            MessagingType::Response,
        )
        .await
}

fn fb_error(status: u16, code: i64, subcode: Option<i64>) -> Fault {
    Fault::Error {
        status,
        code,
        subcode,
        message: "whatever Facebook says".into(),
    }
}

async fn customer(fake: &pagesync_fake_graph::FakeGraph) {
    fake.add_message(PAGE, "c1", FakeMessage::customer("m_c1", "hi", Utc::now()));
}

#[tokio::test]
async fn an_attachment_goes_by_url_in_facebooks_shape() {
    let fake = fake_with_page().await;
    customer(&fake).await;
    let url = "https://cdn.example.test/cat.jpg";
    let message = OutgoingMessage::Attachment {
        kind: AttachmentKind::Image,
        url,
    };

    let sent = client(&fake)
        .send(
            PAGE,
            &AccessToken::new(TOKEN),
            "c1",
            &message,
            MessagingType::Response,
        )
        .await
        .unwrap();

    assert!(sent.message_id.starts_with("m_sent_"));
    assert_eq!(
        sends(&fake),
        vec![
            json!({"recipient": {"id": "c1"}, "messaging_type": "RESPONSE",
            "message": {"attachment": {"type": "image", "payload": {"url": url, "is_reusable": false}}}})
        ]
    );
    let recorded = &fake.sent_messages()[0];
    assert_eq!(recorded.attachment, Some(("image".into(), url.into())));
}

#[tokio::test]
async fn a_send_is_retried_after_5xx_transient_codes_and_throttling() {
    let fake = fake_with_page().await;
    customer(&fake).await;
    let m = || Match::MethodPath(Method::POST, "/messages".into());
    fake.inject(m(), Fault::ServerError(502), Some(1));
    fake.inject(m(), fb_error(400, 2, None), Some(1));
    fake.inject(m(), fb_error(400, 80006, None), Some(1));

    let sent = send_hi(&fake).await;

    assert!(sent.is_ok(), "{sent:?}");
    assert_eq!(sends(&fake).len(), 4);
    assert_eq!(fake.sent_messages().len(), 1);
}

#[tokio::test]
async fn a_send_that_may_have_gone_out_is_not_repeated() {
    let fake = fake_with_page().await;
    customer(&fake).await;
    fake.inject(
        Match::MethodPath(Method::POST, "/messages".into()),
        fb_error(500, 1, Some(1357046)),
        Some(1),
    );
    let invalid_reply = send_hi(&fake).await.unwrap_err();
    assert!(
        matches!(invalid_reply, GraphError::Api { code: Some(1), .. }),
        "{invalid_reply:?}"
    );
    assert_eq!(sends(&fake).len(), 1);

    // No answer within the timeout: the fake may well have sent it.
    fake.set_latency(Duration::from_millis(500));
    let mut cfg = GraphConfig::new(fake.base_url().parse().unwrap());
    cfg.retry = super::fast_retry();
    cfg.request_timeout = Duration::from_millis(100);
    let timed_out = GraphClient::new(cfg)
        .unwrap()
        .send_text(
            PAGE,
            &AccessToken::new(TOKEN),
            "c1",
            "hi",
            MessagingType::Response,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(timed_out, GraphError::NoAnswer(_)),
        "{timed_out:?}"
    );
    assert_eq!(
        fake.arrived(&Method::POST, "/messages"),
        2,
        "the timed-out send was made once"
    );
}
