//! The console's pages over HTTP: login, the operator cookie, settings, assets.
//! (What a person does in them is tested in a real browser: tests/tests/console_browser.rs.)

use reqwest::Method;
use serde_json::json;

use crate::support::{Auth, OPERATOR_TOKEN, PAGE_A, PAGE_B, TestApp};

async fn get(t: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = t.http.get(t.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

fn location(resp: &reqwest::Response) -> &str {
    resp.headers()["location"].to_str().unwrap()
}

/// Logs in through the form; the `name=value` of the operator cookie.
async fn operator_login(t: &TestApp, token: &str) -> reqwest::Response {
    t.http
        .post(t.url("/login"))
        .form(&[("operator_token", token)])
        .send()
        .await
        .unwrap()
}

fn cookie_pair(resp: &reqwest::Response) -> String {
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn without_a_session_every_page_leads_to_the_login_page() {
    let t = TestApp::spawn().await;
    for path in ["/", "/inbox", "/settings/integrations"] {
        let resp = get(&t, path, None).await;
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(location(&resp), "/login", "{path}");
    }
    let resp = get(&t, "/login", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let page = resp.text().await.unwrap();
    assert!(page.contains("Connect with Facebook"));
    assert!(page.contains(r#"href="/facebook/login""#));
    assert!(page.contains(r#"name="operator_token""#));
    assert!(page.contains(r#"<label for="operator_token">"#), "labelled");
}

#[tokio::test]
async fn the_operator_token_form_sets_an_http_only_strict_cookie_that_the_api_accepts() {
    let t = TestApp::spawn().await;
    let refused = operator_login(&t, "not-the-token").await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("set-cookie").is_none());
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("That operator token is not valid.")
    );

    let resp = operator_login(&t, OPERATOR_TOKEN).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/inbox");
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    assert!(
        !set.contains(OPERATOR_TOKEN),
        "the token is encoded, never in clear: {set}"
    );
    let cookie = cookie_pair(&resp);

    let inbox = get(&t, "/inbox", Some(&cookie)).await;
    assert_eq!(inbox.status(), 200);
    let html = inbox.text().await.unwrap();
    assert!(html.contains(r#"id="conversations""#) && html.contains("Log out (operator)"));
    assert!(!html.contains(OPERATOR_TOKEN));
    assert_eq!(location(&get(&t, "/", Some(&cookie)).await), "/inbox");
    assert_eq!(location(&get(&t, "/login", Some(&cookie)).await), "/inbox");

    // The API takes the cookie as it takes the bearer token (JSON, per the CSRF rule).
    let (status, list) = t
        .api(
            Method::GET,
            "/api/integrations/facebook",
            Auth::Session(&cookie),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let forged = "pagesync_operator=bm90LXRoZS10b2tlbg";
    let (status, _) = t
        .api(
            Method::GET,
            "/api/integrations/facebook",
            Auth::Session(forged),
            None,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(location(&get(&t, "/inbox", Some(forged)).await), "/login");
}

#[tokio::test]
async fn logging_out_clears_both_cookies_and_cross_site_forms_are_refused() {
    let t = TestApp::spawn().await;
    let cross = t
        .http
        .post(t.url("/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("operator_token", OPERATOR_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(cross.headers().get("set-cookie").is_none());

    let cookie = cookie_pair(&operator_login(&t, OPERATOR_TOKEN).await);
    let out = t
        .http
        .post(t.url("/logout"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(location(&out), "/login");
    let cleared: Vec<_> = out
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("pagesync_operator=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("session_id=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
}

#[tokio::test]
async fn settings_show_the_webhook_url_the_form_and_only_the_callers_integrations() {
    let t = TestApp::spawn().await;
    t.fake
        .add_page(PAGE_A.0, "Dog <script>alert(1)</script> Page", PAGE_A.2);
    let (status, _) = t
        .api(
            Method::PUT,
            &format!("/api/integrations/facebook/{}", PAGE_A.0),
            Auth::Operator,
            Some(json!({"access_token": PAGE_A.2, "active": true})),
        )
        .await;
    assert_eq!(status, 201);
    // Bob connects page B, which has a linked Instagram account.
    let code = t.facebook_user("Bob", &[PAGE_B]);
    t.fake.link_instagram(PAGE_B.0, "17841400000000001");
    let (pending, state, _) = t.login(None).await;
    let (status, _, set) = t.callback_setting(Some(&pending), &code, &state).await;
    assert_eq!(status, 200);
    let user_cookie = set.expect("a fresh session at the callback");

    let operator = cookie_pair(&operator_login(&t, OPERATOR_TOKEN).await);
    let resp = get(
        &t,
        &format!("/settings/integrations?saved={}", PAGE_A.0),
        Some(&operator),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    for expected in [
        "Facebook Integration",
        "http://127.0.0.1:9/facebook/webhook",
        ">Copy</button>",
        r#"<label for="page_id">Page ID</label>"#,
        r#"<label for="access_token">Access Token</label>"#,
        r#"<label for="active">Active</label>"#,
        "Save Integration",
        "Integration saved successfully!",
        PAGE_A.0,
        PAGE_B.0,
    ] {
        assert!(html.contains(expected), "{expected} missing");
    }
    assert!(!html.contains("<script>alert(1)"), "names are escaped");
    assert!(html.contains("Dog &#60;script&#62;") || html.contains("Dog &lt;script&gt;"));
    assert!(
        !html.contains(PAGE_A.2) && !html.contains(PAGE_B.2),
        "no token on the page"
    );

    // A session user sees only its page, and no confirmation for another's.
    let resp = get(
        &t,
        &format!("/settings/integrations?saved={}", PAGE_A.0),
        Some(&user_cookie),
    )
    .await;
    let html = resp.text().await.unwrap();
    assert!(html.contains(PAGE_B.0));
    assert!(html.contains("<dt>Instagram account</dt>") && html.contains("17841400000000001"));
    assert!(!html.contains(PAGE_A.0));
    assert!(!html.contains("Integration saved successfully!"));
}

#[tokio::test]
async fn assets_are_served_with_cache_headers_and_revalidate() {
    let t = TestApp::spawn().await;
    for (name, kind) in [
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
        ("inbox.js", "text/javascript"),
        ("settings.js", "text/javascript"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let resp = get(&t, &format!("/assets/{name}"), None).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert_eq!(resp.headers()["cache-control"], "public, max-age=86400");
        let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
        let again = t
            .http
            .get(t.url(&format!("/assets/{name}")))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{name}");
    }
    let icon = get(&t, "/favicon.ico", None).await;
    assert_eq!(icon.status(), 308);
    assert_eq!(location(&icon), "/assets/favicon.svg");
    assert_eq!(get(&t, "/assets/../Cargo.toml", None).await.status(), 404);
    assert_eq!(get(&t, "/assets/secret.js", None).await.status(), 404);
}

#[tokio::test]
async fn a_browser_finishing_the_facebook_login_sees_each_page_and_its_self_test_in_words() {
    let t = TestApp::spawn().await;
    let code = t.facebook_user("Carol", &[PAGE_A]);
    let (pending, state, _) = t.login(None).await;
    let mut url = reqwest::Url::parse(&t.url("/facebook/callback")).unwrap();
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    let resp = t
        .http
        .get(url)
        .header("cookie", &pending)
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let session = cookie_pair(&resp);
    assert!(session.starts_with("session_id=") && session != pending);
    let html = resp.text().await.unwrap();
    assert!(html.contains("1 page(s) connected") && html.contains(PAGE_A.1));
    assert!(html.contains("Polling test: page") && html.contains("passed"));
    // Nothing listens at this app's webhook address: the webhook test fails, in words.
    assert!(html.contains("Webhook test: message") && html.contains("failed: "));
    assert!(!html.contains(PAGE_A.2), "no token on the page");
    // The new session works for the console.
    assert_eq!(get(&t, "/inbox", Some(&session)).await.status(), 200);
}
