//! CORS: listed origins get tower-http's answers, others and an unset list nothing.

use reqwest::Method;

use crate::support::TestApp;

const CRM: &str = "https://crm.example.test";

async fn preflight(t: &TestApp, origin: &str) -> reqwest::Response {
    t.http
        .request(Method::OPTIONS, t.url("/api/conversations/101/u1/messages"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        )
        .send()
        .await
        .unwrap()
}

async fn simple(t: &TestApp, origin: &str) -> reqwest::Response {
    t.http
        .get(t.url("/api/integrations/facebook"))
        .header("origin", origin)
        .bearer_auth(crate::support::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn an_allowed_origin_gets_its_preflight_and_credentialed_answers() {
    let t = TestApp::spawn_configured(|c| {
        c.cors_allowed_origins =
            pagesync_oauth_api::cors::parse_origins(&format!("{CRM}, http://localhost:3000"))
                .unwrap();
    })
    .await;

    let pre = preflight(&t, CRM).await;
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(header(&pre, "access-control-allow-origin"), Some(CRM));
    assert_eq!(
        header(&pre, "access-control-allow-credentials"),
        Some("true")
    );
    let methods = header(&pre, "access-control-allow-methods")
        .unwrap()
        .to_ascii_uppercase();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = header(&pre, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "idempotency-key"] {
        assert!(headers.contains(h), "{headers}");
    }

    let get = simple(&t, "http://localhost:3000").await;
    assert_eq!(get.status(), 200);
    assert_eq!(
        header(&get, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(
        header(&get, "access-control-allow-credentials"),
        Some("true")
    );
}

#[tokio::test]
async fn another_origin_or_an_unset_list_gets_no_cors_headers() {
    let t = TestApp::spawn_configured(|c| {
        c.cors_allowed_origins = pagesync_oauth_api::cors::parse_origins(CRM).unwrap();
    })
    .await;
    let unset = TestApp::spawn().await;

    for r in [
        preflight(&t, "https://evil.example.test").await,
        simple(&t, "https://evil.example.test").await,
        preflight(&unset, CRM).await,
        simple(&unset, CRM).await,
    ] {
        assert!(
            r.headers()
                .keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{:?}",
            r.headers()
        );
    }
}
