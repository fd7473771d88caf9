//! `projector migrate`: the one-shot step docker compose runs before the services.

use std::process::Command;

use pagesync_testkit::TestDb;

/// Runs `projector migrate` against `db` with NATS pointed at a port nobody listens on.
fn migrate(db: &TestDb) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_projector"))
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .env("NATS_URL", "nats://127.0.0.1:1")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run projector migrate")
}

#[tokio::test]
async fn migrate_creates_the_schema_without_nats_and_is_repeatable() {
    // Arrange: a database with no tables at all.
    let db = TestDb::empty().await;

    // Act: migrate twice, as a restarted compose stack would.
    let first = migrate(&db);
    let second = migrate(&db);

    // Assert: both succeed and the projection's tables exist, each migration once.
    for out in [&first, &second] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(db.count("SELECT count(*) FROM conversations").await, 0);
    assert_eq!(
        db.count("SELECT count(*) - count(DISTINCT version) FROM refinery_schema_history")
            .await,
        0
    );
    assert!(
        db.count("SELECT count(*) FROM refinery_schema_history")
            .await
            > 0
    );
}
