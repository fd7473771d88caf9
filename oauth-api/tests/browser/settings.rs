//! Logging in and Settings → Integrations.

use crate::driver::Browser;
use crate::support::{OPERATOR_TOKEN, PAGE_A, PAGE_B, TestApp};

#[tokio::test]
async fn an_operator_logs_in_connects_a_page_by_hand_and_a_second_user_does_not_see_it() {
    let t = TestApp::spawn_with_pipeline().await;
    t.fake.add_page(PAGE_A.0, PAGE_A.1, PAGE_A.2);
    let b = Browser::start().await;

    // Without a session the console leads to the login page.
    b.goto(&t.url("/")).await;
    assert_eq!(b.path().await, "/login");
    b.text_contains("main", "Connect with Facebook").await;
    b.fill("#operator_token", "wrong token").await;
    b.click("form[action='/login'] button").await;
    b.text_contains("#login-error", "not valid").await;
    b.fill("#operator_token", OPERATOR_TOKEN).await;
    b.click("form[action='/login'] button").await;
    b.find("#conversations").await;
    assert_eq!(b.path().await, "/inbox");

    // Facebook refuses a wrong token: the form says so, in words.
    b.goto(&t.url("/settings/integrations")).await;
    b.text_contains("#webhook-url", "/facebook/webhook").await;
    b.fill("#page_id", PAGE_A.0).await;
    b.fill("#access_token", "EAAB-not-a-token").await;
    b.click("#connect-form button[type=submit]").await;
    b.text_contains("#connect-error", "Not saved:").await;

    b.fill("#access_token", PAGE_A.2).await;
    b.click("#connect-form button[type=submit]").await;
    b.text_contains("#notice", "Integration saved successfully!")
        .await;
    let item = format!("li[data-page-id='{}']", PAGE_A.0);
    b.text_contains(&format!("{item} .badge"), "Active").await;
    b.text_contains(&item, PAGE_A.1).await;
    b.screenshot("settings").await;

    b.click(&format!("{item} [data-action=toggle]")).await;
    b.text_contains(&format!("{item} .badge"), "Inactive").await;
    b.click(&format!("{item} [data-action=toggle]")).await;
    b.text_contains(&format!("{item} .badge"), "Active").await;
    b.close().await;

    // A user who connected another page sees that one only.
    let (cookie, status, _) = t.connect("Bob", &[PAGE_B]).await;
    assert_eq!(status, 200);
    let bob = Browser::start().await;
    bob.goto(&t.url("/login")).await;
    bob.add_cookie(&cookie).await;
    bob.goto(&t.url("/settings/integrations")).await;
    bob.text_contains("#integrations", PAGE_B.0).await;
    bob.text_lacks("#integrations", PAGE_A.0).await;
    bob.close().await;
}
