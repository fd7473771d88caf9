//! docs/metrics.md lists every metric the code names and every metric the
//! Grafana dashboard queries, so neither drifts from the other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Names that start like a metric but are not one: a Postgres NOTIFY channel, a
/// cookie, and the Graph client's metric prefixes (its metrics are documented in full).
const NOT_METRICS: [&str; 5] = [
    "pagesync_conversation_changes",
    "pagesync_operator",
    "pagesync_graph",
    "pagesync_poller",
    "pagesync_oauth_api",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Every `pagesync_[a-z0-9_]+` token of `text`.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("pagesync_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

/// The quoted `"pagesync_..."` strings of the non-test Rust sources of the services.
fn names_in_code() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for krate in [
        "ingest",
        "projector",
        "poller",
        "oauth-api",
        "runtime",
        "graph",
    ] {
        let mut dirs = vec![root().join(krate).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    out.extend(
                        names(&text)
                            .into_iter()
                            .filter(|n| text.contains(&format!("\"{n}\""))),
                    );
                }
            }
        }
    }
    out.retain(|n| !NOT_METRICS.contains(&n.as_str()));
    out
}

#[test]
fn every_metric_in_the_code_and_the_dashboard_is_documented() {
    let docs = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    let documented = names(&docs);
    let dashboard = std::fs::read_to_string(root().join("deploy/grafana/pagesync.json")).unwrap();
    let queried: BTreeSet<String> = names(&dashboard)
        .into_iter()
        .map(|n| n.trim_end_matches("_bucket").to_owned())
        .collect();
    let in_code = names_in_code();
    assert!(
        in_code.contains("pagesync_ingest_deliveries_total"),
        "{in_code:?}"
    );

    let undocumented: Vec<&String> = in_code
        .union(&queried)
        .filter(|n| !documented.contains(*n))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/metrics.md: {undocumented:?}"
    );
}
