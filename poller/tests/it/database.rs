//! The poller's database calls on a Postgres connection that goes silent
//! (half-open: no FIN, no RST).

use std::time::Duration;

use pagesync_poller::{PageOutcome, store};

use crate::{PAGE, TestApp};

const OTHER: &str = "202468371725792";
const OTHER_TOKEN: &str = "EAAB-other-page-token-Lm42wR";

#[tokio::test]
async fn a_page_whose_connection_goes_silent_fails_and_the_next_page_is_polled() {
    // Arrange: two pages; the poller reaches Postgres through a proxy.
    let t = TestApp::spawn_behind_proxy(Duration::from_secs(3)).await;
    t.fake.add_page(OTHER, "Cat Page", OTHER_TOKEN);
    t.connect(OTHER, OTHER_TOKEN).await;
    // Read through the proxy: the pool keeps that connection.
    let pages = store::pollable(&t.app.poller().pool, None).await.unwrap();
    assert_eq!(pages.len(), 2);

    // Act: the pooled connection goes silent; each page is polled in turn.
    let proxy = t.proxy.as_ref().expect("behind a proxy");
    assert!(proxy.freeze() > 0, "the poller had a connection open");
    let mut outcomes = Vec::new();
    for page in &pages {
        let outcome = tokio::time::timeout(Duration::from_secs(20), t.app.poller().poll_page(page))
            .await
            .expect("the poll ends although its connection is silent");
        outcomes.push(outcome);
    }

    // Assert: the first page failed on the silent connection, the next one was
    // polled on a new connection, and the failure was recorded.
    assert!(
        matches!(&outcomes[0], PageOutcome::Failed(reason) if reason.contains("database")),
        "{outcomes:?}"
    );
    assert!(outcomes[1].is_success(), "{outcomes:?}");
    let recorded: Vec<(String, Option<String>)> =
        t.db.client()
            .await
            .query(
                "SELECT page_id, last_poll_outcome FROM integrations ORDER BY page_id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(
        recorded,
        vec![
            (PAGE.to_owned(), Some("failed".to_owned())),
            (OTHER.to_owned(), Some("success".to_owned())),
        ]
    );
}
