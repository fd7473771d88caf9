//! The files' item cache (docs/projection.md, "Files"): a running projector
//! rewrites a conversation from the items it kept plus those written since, and
//! the file comes out byte for byte as one rendered whole from Postgres.

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use pagesync_projector::App;
use pagesync_runtime::CancellationToken;
use pagesync_schema::Source;
use pagesync_testkit::wait;

use crate::support::{TestProjector, echo, message, tree};

const PAGE: &str = "101";
const T: i64 = 1_700_000_000_000;

/// Waits until the projector acknowledged the stream up to `seq` (its files are
/// written before its acks).
async fn acknowledged(p: &TestProjector, seq: u64) {
    wait::until(
        Duration::from_secs(30),
        "the event acknowledged",
        || async {
            let consumer: Result<PullConsumer, _> = p
                .nats
                .js
                .get_consumer_from_stream("projector", p.nats.stream.as_str())
                .await;
            match consumer {
                Ok(mut c) => c
                    .info()
                    .await
                    .is_ok_and(|i| i.ack_floor.stream_sequence >= seq),
                Err(_) => false,
            }
        },
    )
    .await;
}

#[tokio::test]
async fn files_rewritten_one_event_at_a_time_equal_the_files_rendered_whole() {
    // Arrange: messages, a reply, a poll copy replaced by the webhook's (a new
    // time), and two items a better copy moves to another conversation (one
    // leaves u3 without items).
    let p = TestProjector::new().await;
    let events = [
        message(Source::Ingest, PAGE, "u1", "m1", T, "one"),
        message(Source::Poller, PAGE, "u1", "m2", T + 5, "two (poll)"),
        echo(PAGE, "u1", "m3", T + 2, "a reply"),
        message(
            Source::Poller,
            PAGE,
            "u2",
            "m4",
            T + 3,
            "filed under u2 first",
        ),
        message(Source::Ingest, PAGE, "u2", "m5", T + 4, "stays in u2"),
        message(Source::Poller, PAGE, "u3", "m6", T + 6, "u3's only item"),
        message(Source::Ingest, PAGE, "u1", "m2", T + 1, "two"),
        message(Source::Ingest, PAGE, "u1", "m4", T + 3, "belongs to u1"),
        message(Source::Ingest, PAGE, "u1", "m6", T + 7, "so does this"),
        message(Source::Ingest, PAGE, "u1", "m7", T + 8, "seven"),
    ];
    let app = App::build(p.config()).await.expect("builds");
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));

    // Act: one event at a time, each written before the next is published.
    for (seq, e) in (1..).zip(&events) {
        p.publish(std::slice::from_ref(e)).await;
        acknowledged(&p, seq).await;
    }
    stop.cancel();
    running.await.unwrap().unwrap();
    let incremental = tree(p.data_dir());
    p.rebuild().await;

    // Assert
    assert_eq!(tree(p.data_dir()), incremental);
    let u1 = p.conversation_file(PAGE, "u1").unwrap();
    let mids: Vec<&str> = u1
        .iter()
        .filter_map(|item| item["message"]["mid"].as_str())
        .collect();
    assert_eq!(mids, ["m1", "m2", "m3", "m4", "m6", "m7"]);
    assert_eq!(u1[1]["message"]["text"], "two");
    assert_eq!(p.conversation_file(PAGE, "u2").unwrap().len(), 1);
    assert!(p.conversation_file(PAGE, "u3").is_none());
}
