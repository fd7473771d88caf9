//! The contract's conversation logs, read from the real binary's JSON output.

use std::process::Command;

use pagesync_schema::Source;
use serde_json::Value;

use crate::support::{TestProjector, echo, message};

const T: i64 = 1_700_000_000_000;

/// Runs `projector <command>` to completion and returns its JSON log lines.
fn run(p: &TestProjector, command: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_projector"))
        .arg(command)
        .envs(p.env())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .output()
        .expect("run projector");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// (message, page_id, psid) of every conversation log line, in order.
fn conversation_logs(lines: &[Value]) -> Vec<(String, String, String)> {
    lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("conversation"))
        })
        .map(|l| {
            let f = &l["fields"];
            let text = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (text("message"), text("page_id"), text("psid"))
        })
        .collect()
}

#[tokio::test]
async fn each_message_logs_new_or_continuing_conversation_with_both_ids_and_a_rebuild_does_not_repeat_them()
 {
    let p = TestProjector::new().await;
    p.publish(&[
        message(Source::Ingest, "101", "u1", "m1", T, "hello"),
        echo("101", "u1", "m2", T + 1, "hi, how can we help?"),
        message(Source::Ingest, "101", "u2", "m3", T + 2, "another customer"),
    ])
    .await;

    let logs = conversation_logs(&run(&p, "drain"));
    let line = |m: &str, psid: &str| (m.to_owned(), "101".to_owned(), psid.to_owned());
    assert_eq!(logs.len(), 3, "{logs:?}");
    assert!(logs.contains(&line("new conversation", "u1")), "{logs:?}");
    assert!(
        logs.contains(&line("continuing conversation", "u1")),
        "{logs:?}"
    );
    assert!(logs.contains(&line("new conversation", "u2")), "{logs:?}");

    // A second message of u2 later continues its conversation.
    p.publish(&[message(
        Source::Ingest,
        "101",
        "u2",
        "m4",
        T + 3,
        "me again",
    )])
    .await;
    assert_eq!(
        conversation_logs(&run(&p, "drain")),
        vec![line("continuing conversation", "u2")]
    );

    // Replaying history is not news: a rebuild keeps these lines out of the INFO log.
    assert_eq!(conversation_logs(&run(&p, "rebuild")), vec![]);
}
