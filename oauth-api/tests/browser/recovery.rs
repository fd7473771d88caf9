//! The console survives a server restart, and fits a 360 px wide phone.

use serde_json::json;

use crate::driver::Browser;
use crate::inbox::{connect_page_a, conversation, customer_writes, log_in_as_operator};
use crate::support::{PAGE_A, TestApp};

#[tokio::test]
async fn the_open_inbox_reconnects_after_a_restart_and_shows_what_came_meanwhile() {
    let mut t = TestApp::spawn_with_pipeline().await;
    connect_page_a(&t).await;
    let b = Browser::start().await;
    log_in_as_operator(&b, &t).await;
    b.text_contains("#live-state", "Live").await;
    customer_writes(&t, "cust-r1", "m_restart_1", "Before the restart", 1).await;
    b.text_contains(&conversation("cust-r1"), "Before the restart")
        .await;
    b.click(&conversation("cust-r1")).await;
    b.text_contains("#messages", "Before the restart").await;

    // The server goes away: the page says so instead of pretending to be live.
    t.stop();
    b.text_contains("#live-state", "Reconnecting").await;
    // Meanwhile ingest and the projector keep working: a message arrives while
    // no oauth-api is there to push it to the page.
    customer_writes(&t, "cust-r1", "m_restart_2", "During the restart", 1).await;
    customer_writes(&t, "cust-r2", "m_restart_3", "A new customer meanwhile", 1).await;

    t.restart().await;
    // The page reconnects by itself and catches up without a reload: the list
    // and the open thread both show what came while it was away.
    b.text_contains("#live-state", "Live").await;
    b.text_contains(&conversation("cust-r2"), "A new customer meanwhile")
        .await;
    b.text_contains("#messages", "During the restart").await;
    // And it is live again: a message after the restart arrives by push.
    customer_writes(&t, "cust-r1", "m_restart_4", "After the restart", 1).await;
    b.text_contains("#messages", "After the restart").await;
    b.close().await;
}

/// The page's width as laid out, and the viewport's.
async fn widths(b: &Browser) -> (u64, u64) {
    let v = b
        .client
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
}

/// The right edge of the element, in CSS pixels.
async fn right_edge(b: &Browser, css: &str) -> f64 {
    let v = b
        .client
        .execute(
            "return document.querySelector(arguments[0]).getBoundingClientRect().right;",
            vec![json!(css)],
        )
        .await
        .unwrap();
    v.as_f64().unwrap()
}

#[tokio::test]
async fn at_360_px_wide_nothing_scrolls_sideways_and_a_thread_can_be_answered() {
    let t = TestApp::spawn_with_pipeline().await;
    connect_page_a(&t).await;
    let b = Browser::start().await;
    b.client.set_window_size(360, 800).await.unwrap();
    log_in_as_operator(&b, &t).await;
    let (_, viewport) = widths(&b).await;
    assert!(viewport <= 360, "the viewport is phone-sized: {viewport}");

    customer_writes(
        &t,
        "cust-n",
        "m_narrow_1",
        "Hello from a phone-sized screen",
        1,
    )
    .await;
    b.text_contains(&conversation("cust-n"), "Hello from a phone-sized screen")
        .await;
    let (page, viewport) = widths(&b).await;
    assert!(
        page <= viewport,
        "the inbox list is {page} px wide in a {viewport} px viewport"
    );

    b.click(&conversation("cust-n")).await;
    b.text_contains("#messages", "Hello from a phone-sized screen")
        .await;
    let (page, viewport) = widths(&b).await;
    assert!(
        page <= viewport,
        "the thread is {page} px wide in a {viewport} px viewport"
    );
    for control in ["#reply-text", "#send", "#toggle-status"] {
        assert!(
            b.find(control).await.is_displayed().await.unwrap(),
            "{control} shows"
        );
        let right = right_edge(&b, control).await;
        assert!(
            right <= viewport as f64,
            "{control} ends at {right} px, past {viewport}"
        );
    }
    b.fill("#reply-text", "Answered from a phone").await;
    b.click("#send").await;
    b.text_contains("#messages li.out", "Answered from a phone")
        .await;

    b.goto(&t.url("/settings/integrations")).await;
    b.text_contains("#integrations", PAGE_A.1).await;
    let (page, viewport) = widths(&b).await;
    assert!(
        page <= viewport,
        "Settings are {page} px wide in a {viewport} px viewport"
    );
    b.close().await;
}
