//! A Postgres connection that goes silent (half-open: no FIN, no RST) must not
//! stall the projector while `/ready` says all is well.

use std::time::Duration;

use pagesync_projector::App;
use pagesync_runtime::CancellationToken;
use pagesync_schema::{Event, Source};
use pagesync_testkit::{Proxy, wait};

use crate::support::{TestProjector, message};

const T: i64 = 1_700_000_000_000;

fn messages(from: usize, to: usize) -> Vec<Event> {
    (from..to)
        .map(|i| {
            message(
                Source::Ingest,
                "101",
                "u1",
                &format!("m{i}"),
                T + i as i64,
                "hi",
            )
        })
        .collect()
}

/// The stall counter of this test's stream.
fn stalls(p: &TestProjector) -> f64 {
    let needle = format!(
        "pagesync_projector_stalls_total{{stream=\"{}\"}} ",
        p.nats.stream
    );
    pagesync_runtime::ops::metrics_handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// `/ready`'s status and reason; a request that does not answer in time is an error.
async fn ready(http: &reqwest::Client, url: &str) -> Result<(u16, String), reqwest::Error> {
    let r = http.get(url).send().await?;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await?;
    Ok((
        status,
        body["reason"].as_str().unwrap_or_default().to_owned(),
    ))
}

#[tokio::test]
async fn a_frozen_connection_is_given_up_the_batch_applied_on_a_new_one_and_ready_is_503_meanwhile()
{
    // Arrange: the projector reaches Postgres through a proxy that can freeze.
    let p = TestProjector::new().await;
    let mut config = p.config();
    let proxy = Proxy::in_front_of(&mut config.database, Duration::from_secs(3)).await;
    config.projector_batch_deadline = Duration::from_secs(2);
    // Only the batch may meet the frozen connections first (the owner check would
    // otherwise take one at random).
    config.projector_owner_check_interval = Duration::from_secs(3600);
    let app = App::build(config).await.expect("builds");
    let ready_url = format!("http://{}/ready", app.local_addr());
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));
    p.publish(&messages(0, 5)).await;
    // Applied and their files written: nothing is in flight when the freeze comes.
    wait::until(Duration::from_secs(30), "first 5 applied", || async {
        p.conversation_file("101", "u1")
            .is_some_and(|f| f.len() == 5)
    })
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    assert_eq!(ready(&http, &ready_url).await.unwrap().0, 200);

    // Act: every open connection goes silent; new ones still pass.
    assert!(proxy.freeze() > 0, "the projector had connections open");
    p.publish(&messages(5, 15)).await;

    // Assert: the stall is counted and reported (the counter first: /ready's own
    // query could otherwise be the one to meet a frozen connection), then the
    // batch applies on a new connection.
    wait::until(Duration::from_secs(20), "a stall is counted", || async {
        stalls(&p) >= 1.0
    })
    .await;
    let (status, reason) = ready(&http, &ready_url).await.unwrap();
    assert_eq!(status, 503, "{reason}");
    assert!(reason.starts_with("no batch applied for"), "{reason}");
    assert!(reason.contains("deadline"), "{reason}");
    wait::until(
        Duration::from_secs(30),
        "the 10 events applied without a thaw",
        || async { p.count("SELECT count(*) FROM applied_events").await == 15 },
    )
    .await;
    wait::until(Duration::from_secs(20), "/ready is 200 again", || async {
        matches!(ready(&http, &ready_url).await, Ok((200, _)))
    })
    .await;
    stop.cancel();
    running.await.unwrap().unwrap();
    let file = p.conversation_file("101", "u1").expect("conversation file");
    let mids: Vec<&str> = file
        .iter()
        .filter_map(|item| item["message"]["mid"].as_str())
        .collect();
    let expected: Vec<String> = (0..15).map(|i| format!("m{i}")).collect();
    assert_eq!(file.len(), 15, "{file:#?}");
    assert_eq!(mids, expected, "each event once, in order");
    assert_eq!(
        p.count("SELECT sum(message_count) FROM conversations")
            .await,
        15
    );
    drop(proxy);
}
