//! `projector dead-letters list|show|retry|discard`, run as the binary an operator
//! runs (docs/runbook.md "Dead letters").

use std::process::{Command, Output};

use pagesync_schema::Source;

use crate::support::{TestProjector, message};

const T: i64 = 1_700_000_000_000;

fn dead_letters(p: &TestProjector, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_projector"))
        .arg("dead-letters")
        .args(args)
        .envs(p.env())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run projector dead-letters")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The stream sequences of a listing's rows.
fn listed(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter(|l| l.contains('\t'))
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_operator_lists_shows_retries_and_discards_dead_letters_from_the_command_line() {
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
    p.publish(&[message(Source::Ingest, "101", "u1", "m2", T, "boom")])
        .await;
    p.publish_raw("_.message", b"not an envelope".to_vec())
        .await;
    assert_eq!(p.drain().await.dead_letters, 2);

    // Act and assert: list
    let list = stdout(&dead_letters(&p, &["list"]));
    let seqs = listed(&list);
    assert_eq!(seqs.len(), 2, "{list}");
    assert!(
        list.contains("the database refused the event's data"),
        "{list}"
    );
    assert!(list.ends_with("2 shown, 2 in all\n"), "{list}");
    let (boom, garbage) = (&seqs[0], &seqs[1]);

    // show
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&dead_letters(&p, &["show", boom]))).unwrap();
    assert_eq!(shown["stream_seq"].to_string(), *boom);
    assert!(
        shown["payload"].as_str().unwrap().contains("boom"),
        "{shown}"
    );
    let missing = dead_letters(&p, &["show", "999999"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("no dead letter at stream sequence 999999")
    );

    // retry one, once its cause is fixed
    client
        .batch_execute("ALTER TABLE conversation_events DROP CONSTRAINT refuse_boom")
        .await
        .unwrap();
    let retried = stdout(&dead_letters(&p, &["retry", boom]));
    assert_eq!(retried, "retried 1: 1 applied, 0 still dead\n");
    assert_eq!(p.conversation_file("101", "u1").unwrap().len(), 1);
    assert_eq!(
        listed(&stdout(&dead_letters(&p, &["list"]))),
        std::slice::from_ref(garbage)
    );

    // discard the other
    let discarded = stdout(&dead_letters(&p, &["discard", garbage, "999999"]));
    assert_eq!(
        discarded,
        format!("discarded [{garbage}]; not found [999999]\n")
    );
    assert_eq!(p.count("SELECT count(*) FROM dead_letters").await, 0);
}
