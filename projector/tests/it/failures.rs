use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pagesync_projector::App;
use pagesync_runtime::CancellationToken;
use pagesync_schema::{EventType, Source};
use pagesync_testkit::{Proxy, wait};
use serde_json::json;

use crate::support::{TestProjector, event, message, own_metrics, status, tree};

const T: i64 = 1_700_000_000_000;

fn backlog(n: usize) -> Vec<pagesync_schema::Event> {
    (0..n)
        .map(|i| {
            let page = format!("p{}", i % 3);
            let psid = format!("u{}", i % 40);
            message(
                Source::Ingest,
                &page,
                &psid,
                &format!("m{i}"),
                T + i as i64,
                "hello",
            )
        })
        .collect()
}

#[tokio::test]
async fn a_poison_event_becomes_one_dead_letter_and_the_events_behind_it_are_applied() {
    // Arrange
    let p = TestProjector::new().await;
    p.publish(&[message(Source::Ingest, "101", "u1", "m1", T, "before")])
        .await;
    p.publish(&[event(
        EventType::Message,
        Source::Ingest,
        "bad1",
        "101",
        Some("u1"),
        T,
        json!({"message": "not an object"}),
    )])
    .await;
    p.publish(&[message(Source::Ingest, "101", "u1", "m2", T + 1, "after")])
        .await;

    // Act
    let report = p.drain().await;

    // Assert
    assert_eq!(report.dead_letters, 1);
    assert_eq!(
        p.count("SELECT count(*) FROM dead_letters WHERE event_id = 'bad1' AND attempts = 1")
            .await,
        1
    );
    assert_eq!(p.count("SELECT count(*) FROM messages").await, 2);
    assert_eq!(p.dead_letter_metric(), 1.0);
    assert_eq!(p.conversation_file("101", "u1").unwrap().len(), 2);
    // Terminated: a second drain finds nothing to redo.
    assert_eq!(p.drain().await.messages, 0);
}

#[tokio::test]
async fn ids_that_try_to_escape_the_data_dir_never_produce_a_file() {
    let p = TestProjector::new().await;
    let good = message(Source::Ingest, "101", "u1", "m1", T, "hi");
    let mut envelope: serde_json::Value = serde_json::from_slice(&good.to_json()).unwrap();
    for (page, psid) in [
        ("../../etc", "u1"),
        ("101", "../../../tmp/x"),
        ("..", ".."),
        ("101", "a/b"),
    ] {
        envelope["pageid"] = json!(page);
        envelope["subject"] = json!(page);
        envelope["psid"] = json!(psid);
        envelope["id"] = json!(format!("evil-{page}-{psid}").replace(' ', ""));
        p.publish_raw("_.message", serde_json::to_vec(&envelope).unwrap())
            .await;
    }
    p.publish_raw("_.unparsed", b"{not json".to_vec()).await;

    let report = p.drain().await;

    assert_eq!(report.dead_letters, 5);
    assert_eq!(p.count("SELECT count(*) FROM dead_letters").await, 5);
    assert!(
        tree(p.data_dir()).is_empty(),
        "{:?}",
        tree(p.data_dir()).keys()
    );
    assert_eq!(p.dead_letter_metric(), 5.0);
}

#[tokio::test]
async fn with_postgres_unreachable_the_projector_waits_retries_and_catches_up() {
    // Arrange: the projector reaches Postgres through a proxy the test can cut.
    let (_own, metrics) = own_metrics();
    let p = TestProjector::new().await;
    let (proxy, proxied) = Proxy::for_url(&p.db.url).await;
    let mut config = p.config();
    config.database.database_url = proxied;
    let app = App::build(config).await.expect("builds");
    let ready = format!("http://{}/ready", app.local_addr());
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));
    p.publish(&backlog(100)).await;
    wait::until(Duration::from_secs(30), "first 100 applied", || async {
        p.count("SELECT count(*) FROM applied_events").await == 100
    })
    .await;

    // Act: cut Postgres, publish more, then restore it.
    proxy.cut();
    let http = reqwest::Client::new();
    wait::until(
        Duration::from_secs(15),
        "/ready reports Postgres away",
        || async {
            http.get(&ready)
                .send()
                .await
                .map(|r| r.status() == 503)
                .unwrap_or(false)
        },
    )
    .await;
    let more: Vec<_> = backlog(300).into_iter().skip(100).collect();
    p.publish(&more).await;
    wait::until(Duration::from_secs(15), "a retry was attempted", || async {
        metrics
            .render()
            .contains("pagesync_projector_batch_retries_total")
    })
    .await;
    assert_eq!(p.count("SELECT count(*) FROM applied_events").await, 100);
    proxy.restore();

    // Assert
    wait::until(
        Duration::from_secs(60),
        "all 300 applied after Postgres returns",
        || async { p.count("SELECT count(*) FROM applied_events").await == 300 },
    )
    .await;
    wait::until(Duration::from_secs(15), "/ready is 200 again", || async {
        http.get(&ready)
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    })
    .await;
    stop.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(p.count("SELECT count(*) FROM messages").await, 300);
    assert_eq!(p.count("SELECT count(*) FROM dead_letters").await, 0);
    assert_eq!(
        p.count("SELECT sum(message_count) FROM conversations")
            .await,
        300
    );
}

fn spawn_projector(p: &TestProjector, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_projector"))
        .args(args)
        .envs(p.env())
        .env("PROJECTOR_BATCH_SIZE", "50")
        // Messages delivered to the killed process come back after the ack wait.
        .env("PROJECTOR_ACK_WAIT", "2s")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn projector")
}

#[tokio::test]
async fn a_projector_killed_mid_backlog_resumes_and_applies_every_event_exactly_once() {
    // Arrange: a backlog of thousands of events.
    let p = TestProjector::new().await;
    let events = backlog(3000);
    p.publish(&events).await;
    let mut child = spawn_projector(&p, &[]);
    wait::until(
        Duration::from_secs(60),
        "part of the backlog applied",
        || async { p.count("SELECT count(*) FROM applied_events").await >= 300 },
    )
    .await;

    // Act: SIGKILL in the middle, then drain with a new process.
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let applied_at_kill = p.count("SELECT count(*) FROM applied_events").await;
    let status = tokio::task::spawn_blocking({
        let mut drain = spawn_projector(&p, &["drain"]);
        move || drain.wait()
    })
    .await
    .unwrap()
    .unwrap();

    // Assert
    assert!(status.success());
    eprintln!("applied when killed: {applied_at_kill} of 3000");
    assert_eq!(p.count("SELECT count(*) FROM applied_events").await, 3000);
    assert_eq!(p.count("SELECT count(*) FROM messages").await, 3000);
    assert_eq!(
        p.count("SELECT sum(message_count) FROM conversations")
            .await,
        3000
    );
    let mut seen = std::collections::BTreeSet::new();
    for (path, bytes) in tree(p.data_dir()) {
        let items: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
        for item in items {
            let mid = item
                .pointer("/message/mid")
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            assert!(seen.insert(mid), "{path:?} repeats a message");
        }
    }
    assert_eq!(seen.len(), 3000);
}

#[tokio::test]
async fn sigterm_finishes_the_work_in_hand_and_exits_zero() {
    // Arrange: a running projector binary with ops on a known port.
    let p = TestProjector::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_projector"))
        .envs(p.env())
        .env("PROJECTOR_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{port}/ready");
    wait::until(
        Duration::from_secs(30),
        "the projector is ready",
        || async {
            http.get(&ready)
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        },
    )
    .await;
    p.publish(&backlog(50)).await;
    wait::until(Duration::from_secs(30), "events applied", || async {
        p.count("SELECT count(*) FROM applied_events").await == 50
    })
    .await;

    // Act
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();

    // Assert
    assert!(term.success());
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn an_event_postgres_refuses_is_set_aside_and_the_rest_of_its_batch_applied() {
    // Arrange: a mid too large for the index (Postgres refuses it, Rust does not).
    let p = TestProjector::new().await;
    let huge = incompressible(12_000);
    let bad = event(
        EventType::Message,
        Source::Ingest,
        "m_huge",
        "101",
        Some("u1"),
        T + 1,
        json!({"timestamp": T + 1, "message": {"mid": huge, "text": "x"}}),
    );
    p.publish(&[
        message(Source::Ingest, "101", "u1", "m1", T, "before"),
        bad,
        message(Source::Ingest, "101", "u1", "m2", T + 2, "after"),
    ])
    .await;

    // Act
    let report = p.drain().await;

    // Assert
    assert_eq!(report.dead_letters, 1);
    assert_eq!(
        p.count("SELECT count(*) FROM dead_letters WHERE event_id = 'm_huge'")
            .await,
        1
    );
    assert_eq!(p.count("SELECT count(*) FROM messages").await, 2);
    assert_eq!(p.count("SELECT count(*) FROM applied_events").await, 2);
    assert_eq!(p.conversation_file("101", "u1").unwrap().len(), 2);
}

/// Text that compresses badly, so Postgres cannot fit it in an index entry.
fn incompressible(len: usize) -> String {
    let mut x: u64 = 7;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + (x >> 59) as u8 % 26)
        })
        .collect()
}

/// The statements of a batch run pipelined; when a later one is refused, the
/// earlier ones report "transaction aborted". The refusal must still be seen as
/// the event's fault (a dead letter), not as the database being away (a retry loop).
#[tokio::test]
async fn a_page_event_postgres_refuses_is_set_aside_among_messages() {
    // Arrange: a page field name too large for the page_fields key.
    let p = TestProjector::new().await;
    let change = |id: &str, field: &str| {
        event(
            EventType::PageChange,
            Source::Ingest,
            id,
            "101",
            None,
            T,
            json!({"field": field, "value": "v"}),
        )
    };
    p.publish(&[
        message(Source::Ingest, "101", "u1", "m1", T, "before"),
        change("change:bad", &incompressible(12_000)),
        status("101", "u1", false, T + 1),
        change("change:good", "about"),
        message(Source::Ingest, "101", "u1", "m2", T + 2, "after"),
    ])
    .await;

    // Act
    let report = p.drain().await;

    // Assert
    assert_eq!(report.dead_letters, 1);
    assert_eq!(
        p.count("SELECT count(*) FROM dead_letters WHERE event_id = 'change:bad'")
            .await,
        1
    );
    assert_eq!(p.count("SELECT count(*) FROM messages").await, 2);
    assert_eq!(
        p.count("SELECT count(*) FROM page_fields WHERE field = 'about'")
            .await,
        1
    );
    assert_eq!(p.count("SELECT count(*) FROM applied_events").await, 4);
}

/// Two projector instances on one durable consumer (scaling out, or a rolling
/// deploy) share the stream's messages, duplicates included; their batches are
/// serialized in Postgres, so the rows and files are those one instance writes.
#[tokio::test]
async fn two_instances_on_one_consumer_give_the_rows_and_files_of_one() {
    // Arrange: 3,000 messages, webhook and poll copies of the same mids, in two projections.
    let events: Vec<_> = (0..1500)
        .flat_map(|i| {
            let (psid, mid) = (format!("u{}", i % 40), format!("m{i}"));
            [
                message(Source::Poller, "101", &psid, &mid, T + i, "poll"),
                message(Source::Ingest, "101", &psid, &mid, T + i, "webhook"),
            ]
        })
        .collect();
    let single = TestProjector::new().await;
    single.publish_again(&events).await;
    single.drain().await;
    let pair = TestProjector::new().await;
    pair.publish_again(&events).await;
    let mut c = pair.config();
    c.projector_batch_size = 100;
    let (a, b) = (
        App::build(c.clone()).await.unwrap(),
        App::build(c).await.unwrap(),
    );

    // Act
    let (ra, rb) = tokio::join!(
        a.drain(CancellationToken::new()),
        b.drain(CancellationToken::new())
    );

    // Assert
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.messages + rb.messages, 3000);
    assert!(
        ra.messages > 0 && rb.messages > 0,
        "both instances took part: {ra:?} {rb:?}"
    );
    assert_eq!(pair.rows().await, single.rows().await);
    assert_eq!(tree(pair.data_dir()), tree(single.data_dir()));
}

/// Once the cause of a dead letter is fixed, `projector retry-dead-letters` applies
/// it without a rebuild; one that fails again stays, with its attempts counted.
#[tokio::test]
async fn dead_letters_apply_on_retry_once_their_cause_is_fixed() {
    // Arrange: Postgres refuses one message (a constraint standing in for a bug),
    // and one message is not an envelope at all.
    let p = TestProjector::new().await;
    let client = p.db.client().await;
    client
        .batch_execute(
            "ALTER TABLE conversation_events ADD CONSTRAINT refuse_boom CHECK (text IS DISTINCT FROM 'boom')",
        )
        .await
        .unwrap();
    p.publish(&[
        message(Source::Ingest, "101", "u1", "m1", T, "fine"),
        message(Source::Ingest, "101", "u1", "m2", T + 1, "boom"),
    ])
    .await;
    p.publish_raw("_.message", b"not an envelope".to_vec())
        .await;
    assert_eq!(p.drain().await.dead_letters, 2);
    assert_eq!(p.conversation_file("101", "u1").unwrap().len(), 1);
    client
        .batch_execute("ALTER TABLE conversation_events DROP CONSTRAINT refuse_boom")
        .await
        .unwrap();

    // Act
    let report = App::build(p.config())
        .await
        .unwrap()
        .retry_dead_letters(CancellationToken::new())
        .await
        .unwrap();

    // Assert
    assert_eq!(
        report,
        pagesync_projector::RetryReport {
            retried: 2,
            applied: 1,
            still_dead: 1
        }
    );
    assert_eq!(
        p.count("SELECT count(*) FROM dead_letters WHERE attempts = 2 AND event_id IS NULL")
            .await,
        1
    );
    assert_eq!(p.count("SELECT count(*) FROM dead_letters").await, 1);
    assert_eq!(
        p.count("SELECT count(*) FROM conversations WHERE psid = 'u1' AND message_count = 2")
            .await,
        1
    );
    assert_eq!(p.conversation_file("101", "u1").unwrap().len(), 2);
    assert_eq!(
        p.dead_letter_metric(),
        2.0,
        "a retry counts no new dead letter"
    );
}
