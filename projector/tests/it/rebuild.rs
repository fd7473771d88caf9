use pagesync_projector::{App, RunError};
use pagesync_runtime::CancellationToken;
use pagesync_schema::Source;

use crate::support::{TestProjector, echo, message, status, tree};

const T: i64 = 1_700_000_000_000;

#[tokio::test]
async fn rebuild_replays_the_stream_into_the_same_rows_and_files_and_the_consumer_goes_on_after_it()
{
    // Arrange: a projection with messages, a status and a dead letter.
    let p = TestProjector::new().await;
    p.publish(&[
        message(Source::Ingest, "101", "u1", "m1", T, "one"),
        echo("101", "u1", "m2", T + 1, "two"),
        status("101", "u1", false, T + 2),
        message(Source::Poller, "102", "u2", "m3", T + 3, "three"),
    ])
    .await;
    p.publish_raw("_.message", b"not an envelope".to_vec())
        .await;
    p.drain().await;
    let (rows_before, files_before) = (p.rows().await, tree(p.data_dir()));
    std::fs::write(
        p.data_dir().join("facebook/101/conversations/stale.json"),
        b"[]",
    )
    .unwrap();

    // Act
    let report = p.rebuild().await;

    // Assert
    assert_eq!(report.events, 5);
    assert_eq!(p.rows().await, rows_before);
    assert_eq!(tree(p.data_dir()), files_before);
    p.publish(&[message(Source::Ingest, "101", "u1", "m4", T + 4, "four")])
        .await;
    let after = p.drain().await;
    assert_eq!(
        after.messages, 1,
        "only the new event is delivered after a rebuild"
    );
    assert_eq!(p.conversation_file("101", "u1").unwrap().len(), 3);
}

/// A rebuild writes the files a chunk of conversations at a time; with more
/// conversations than one chunk holds, every file still comes out as the drain wrote it.
#[tokio::test]
async fn rebuild_writes_every_file_when_conversations_span_several_chunks() {
    // Arrange: 2,100 conversations over three pages (the chunk is 1,000).
    let p = TestProjector::new().await;
    let events: Vec<_> = (0..2100)
        .map(|i| {
            let page = format!("20{}", i % 3);
            message(
                Source::Ingest,
                &page,
                &format!("c{i}"),
                &format!("m{i}"),
                T + i,
                "hi",
            )
        })
        .collect();
    p.publish(&events).await;
    p.drain().await;
    let files_before = tree(p.data_dir());
    assert_eq!(files_before.len(), 2100);

    // Act
    p.rebuild().await;

    // Assert
    assert_eq!(tree(p.data_dir()), files_before);
}

/// SIGINT/SIGTERM stop a rebuild: it says so, and a rebuild run again completes.
#[tokio::test]
async fn a_rebuild_stopped_by_shutdown_says_so_and_a_second_one_completes() {
    // Arrange
    let p = TestProjector::new().await;
    p.publish(&[message(Source::Ingest, "101", "u1", "m1", T, "one")])
        .await;
    p.drain().await;
    let files_before = tree(p.data_dir());
    let stop = CancellationToken::new();
    stop.cancel();

    // Act
    let stopped = App::build(p.config()).await.unwrap().rebuild(stop).await;

    // Assert
    assert!(matches!(stopped, Err(RunError::Cancelled)), "{stopped:?}");
    assert_eq!(p.rebuild().await.events, 1);
    assert_eq!(tree(p.data_dir()), files_before);
}
