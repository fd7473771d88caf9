//! The pool's connections against a Postgres connection that goes silent
//! (half-open: no FIN, no RST), through the freezing proxy of testkit.

use std::time::Duration;

use pagesync_runtime::{connect, ops, watchdog};
use pagesync_testkit::{Proxy, TestDb};

/// A pool through a proxy, with a 2 s statement deadline.
async fn proxied(db: &TestDb) -> (Proxy, deadpool_postgres::Pool) {
    let mut cfg = db.config();
    let proxy = Proxy::in_front_of(&mut cfg, Duration::from_secs(2)).await;
    (proxy, connect::pool(&cfg).expect("pool"))
}

fn silent_connections() -> f64 {
    let needle = format!("{} ", watchdog::SILENT_CONNECTIONS);
    ops::metrics_handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_query_on_a_silent_connection_fails_and_the_pool_then_hands_out_a_working_one() {
    // Arrange: one pooled connection, then frozen.
    let db = TestDb::new().await;
    let (proxy, pool) = proxied(&db).await;
    let silent_before = silent_connections();
    pool.get()
        .await
        .unwrap()
        .simple_query("SELECT 1")
        .await
        .unwrap();
    assert!(proxy.freeze() > 0);

    // Act: the pool hands out the frozen connection (reuse does not touch the network).
    let conn = pool.get().await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(15), conn.simple_query("SELECT 1"))
        .await
        .expect("the query ends although the server never answers");

    // Assert
    assert!(result.is_err(), "{result:?}");
    assert!(conn.is_closed());
    drop(conn);
    assert!(silent_connections() > silent_before);
    let fresh = tokio::time::timeout(Duration::from_secs(15), pool.get())
        .await
        .expect("a connection in time")
        .unwrap();
    fresh.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn locks_of_a_session_frozen_inside_a_transaction_are_released() {
    // Arrange: a transaction through the proxy holds a lock when the network freezes.
    let db = TestDb::new().await;
    let (proxy, pool) = proxied(&db).await;
    let conn = pool.get().await.unwrap();
    conn.batch_execute("BEGIN; SELECT pg_advisory_xact_lock(4242)")
        .await
        .unwrap();
    assert!(proxy.freeze() > 0);

    // Act: another session, direct, asks for the same lock.
    let direct = db.client().await;
    let locked = tokio::time::timeout(
        Duration::from_secs(15),
        direct.batch_execute("SELECT pg_advisory_lock(4242)"),
    )
    .await;

    // Assert: Postgres ended the session idle in its transaction, freeing the lock.
    assert!(
        matches!(locked, Ok(Ok(()))),
        "the lock stayed held: {locked:?}"
    );
    drop(conn);
}

#[tokio::test]
async fn readiness_through_a_silent_connection_fails_in_time_and_recovers_at_once() {
    let db = TestDb::new().await;
    let (proxy, pool) = proxied(&db).await;
    assert_eq!(ops::postgres_answers(&pool).await, Ok(()));
    assert!(proxy.freeze() > 0);

    let first = tokio::time::timeout(Duration::from_secs(15), ops::postgres_answers(&pool))
        .await
        .expect("the readiness check is bounded");
    let second = tokio::time::timeout(Duration::from_secs(15), ops::postgres_answers(&pool))
        .await
        .expect("the readiness check is bounded");

    assert_eq!(first, Err("Postgres did not answer in time".to_owned()));
    assert_eq!(second, Ok(()), "the silent connection was discarded");
}
