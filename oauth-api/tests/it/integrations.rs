use reqwest::Method;
use serde_json::json;

use crate::support::{Auth, OPERATOR_TOKEN, PAGE_A, PAGE_B, TestApp};

fn path(page: &str) -> String {
    format!("/api/integrations/facebook/{page}")
}

#[tokio::test]
async fn an_operator_can_put_list_patch_and_delete_an_integration() {
    let t = TestApp::spawn().await;
    t.fake.add_page(PAGE_A.0, PAGE_A.1, PAGE_A.2);
    t.fake.set_subscribed(PAGE_A.0, false);

    let (status, created) = t
        .api(
            Method::PUT,
            &path(PAGE_A.0),
            Auth::Operator,
            Some(json!({"access_token": PAGE_A.2, "active": true})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["page_id"], PAGE_A.0);
    assert_eq!(created["name"], PAGE_A.1);
    assert_eq!(created["status"], "active");
    assert_eq!(t.fake.count("subscribed_apps"), 2, "GET then one POST");
    assert!(t.fake.subscribed_fields(PAGE_A.0).is_some());

    let (status, list) = t
        .api(
            Method::GET,
            "/api/integrations/facebook",
            Auth::Operator,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let item = &list["data"][0];
    for key in [
        "page_id",
        "name",
        "active",
        "status",
        "updated_at",
        "last_webhook_at",
        "last_poll_at",
        "webhook_url",
    ] {
        assert!(item.get(key).is_some(), "{key} missing: {item}");
    }
    assert_eq!(item["webhook_url"], "http://127.0.0.1:9/facebook/webhook");
    assert!(!list.to_string().contains(PAGE_A.2));

    let (status, patched) = t
        .api(
            Method::PATCH,
            &path(PAGE_A.0),
            Auth::Operator,
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["active"], false);
    assert_eq!(patched["status"], "inactive");
    assert_eq!(
        t.count("SELECT count(*) FROM integrations WHERE NOT active AND status = 'inactive'")
            .await,
        1
    );

    let (status, replaced) = t
        .api(
            Method::PUT,
            &path(PAGE_A.0),
            Auth::Operator,
            Some(json!({"access_token": PAGE_A.2, "active": true})),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["status"], "active");

    let (status, _) = t
        .api(Method::DELETE, &path(PAGE_A.0), Auth::Operator, None)
        .await;
    assert_eq!(status, 204);
    let (_, list) = t
        .api(
            Method::GET,
            "/api/integrations/facebook",
            Auth::Operator,
            None,
        )
        .await;
    assert_eq!(list["data"], json!([]));
    assert_eq!(t.count("SELECT count(*) FROM integrations").await, 0);
    assert_eq!(
        t.count("SELECT count(*) FROM pages").await,
        1,
        "the page and its history stay"
    );
    let (status, _) = t
        .api(Method::DELETE, &path(PAGE_A.0), Auth::Operator, None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_needs_reauth_integration_shows_it_and_a_new_token_clears_it() {
    let t = TestApp::spawn().await;
    t.fake.add_page(PAGE_A.0, PAGE_A.1, PAGE_A.2);
    t.api(
        Method::PUT,
        &path(PAGE_A.0),
        Auth::Operator,
        Some(json!({"access_token": PAGE_A.2})),
    )
    .await;
    t.db.client()
        .await
        .execute("UPDATE integrations SET status = 'needs_reauth'", &[])
        .await
        .unwrap();

    let (_, view) = t
        .api(Method::GET, &path(PAGE_A.0), Auth::Operator, None)
        .await;
    assert_eq!(view["status"], "needs_reauth");
    let (_, view) = t
        .api(
            Method::PUT,
            &path(PAGE_A.0),
            Auth::Operator,
            Some(json!({"access_token": PAGE_A.2})),
        )
        .await;
    assert_eq!(view["status"], "active");
}

#[tokio::test]
async fn a_token_facebook_rejects_is_a_422_with_facebooks_message_and_nothing_is_stored() {
    let t = TestApp::spawn().await;
    t.fake.add_page(PAGE_A.0, PAGE_A.1, PAGE_A.2);

    let (status, body) = t
        .api(
            Method::PUT,
            &path(PAGE_A.0),
            Auth::Operator,
            Some(json!({"access_token": "EAAB-wrong-token", "active": true})),
        )
        .await;

    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "facebook_error");
    // Facebook's own text, with the token it echoes scrubbed out.
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Malformed access token"),
        "{body}"
    );
    assert!(!body.to_string().contains("EAAB-wrong-token"), "{body}");
    assert_eq!(t.count("SELECT count(*) FROM integrations").await, 0);

    t.fake.inject(
        pagesync_fake_graph::Match::path(PAGE_A.0),
        pagesync_fake_graph::Fault::Error {
            status: 400,
            code: 100,
            subcode: Some(33),
            message: "Unsupported get request. Object does not exist".into(),
        },
        Some(1),
    );
    let (status, body) = t
        .api(
            Method::PUT,
            &path(PAGE_A.0),
            Auth::Operator,
            Some(json!({"access_token": PAGE_A.2})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["message"],
        "Unsupported get request. Object does not exist"
    );
}

#[tokio::test]
async fn a_user_sees_and_changes_only_their_own_pages() {
    let t = TestApp::spawn().await;
    let (alice, status, _) = t.connect("alice", &[PAGE_A]).await;
    assert_eq!(status, 200);
    let (bob, status, _) = t.connect("bob", &[PAGE_B]).await;
    assert_eq!(status, 200);

    let (_, alice_list) = t
        .api(
            Method::GET,
            "/api/integrations/facebook",
            Auth::Session(&alice),
            None,
        )
        .await;
    let (_, bob_list) = t
        .api(
            Method::GET,
            "/api/integrations/facebook",
            Auth::Session(&bob),
            None,
        )
        .await;
    assert_eq!(alice_list["data"].as_array().unwrap().len(), 1);
    assert_eq!(alice_list["data"][0]["page_id"], PAGE_A.0);
    assert_eq!(bob_list["data"][0]["page_id"], PAGE_B.0);
    let (_, all) = t
        .api(
            Method::GET,
            "/api/integrations/facebook",
            Auth::Operator,
            None,
        )
        .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);

    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"active": false}))),
        (Method::PUT, Some(json!({"access_token": PAGE_A.2}))),
        (Method::DELETE, None),
    ] {
        let (status, err) = t
            .api(method.clone(), &path(PAGE_A.0), Auth::Session(&bob), body)
            .await;
        assert_eq!(status, 404, "{method} by bob: {err}");
        assert_eq!(err["error"], "not_found");
    }
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM integrations WHERE page_id = '{}' AND active",
            PAGE_A.0
        ))
        .await,
        1
    );
    let (status, _) = t
        .api(
            Method::PATCH,
            &path(PAGE_A.0),
            Auth::Session(&alice),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn requests_without_credentials_get_401() {
    let t = TestApp::spawn().await;
    for (method, p) in [
        (Method::GET, "/api/integrations/facebook".to_owned()),
        (Method::GET, path(PAGE_A.0)),
        (Method::PATCH, path(PAGE_A.0)),
        (Method::DELETE, path(PAGE_A.0)),
    ] {
        let (status, body) = t
            .http
            .request(method.clone(), t.url(&p))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .map(|r| (r.status().as_u16(), r))
            .unwrap();
        let body: serde_json::Value = body.json().await.unwrap();
        assert_eq!(status, 401, "{method} {p}");
        assert_eq!(body["error"], "unauthorized");
    }
    let (status, _) = t
        .api(
            Method::GET,
            "/api/integrations/facebook",
            crate::support::Auth::Session("session_id=forged"),
            None,
        )
        .await;
    assert_eq!(status, 401);
    let resp = t
        .http
        .get(t.url("/api/integrations/facebook"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = t
        .http
        .get(t.url("/api/integrations/facebook"))
        .header("authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        401,
        "an empty bearer is no credential"
    );
}

#[tokio::test]
async fn malformed_json_is_400_and_wrong_fields_are_422_with_a_message() {
    let t = TestApp::spawn().await;
    let send = |body: &'static str| {
        t.http
            .put(t.url(&path(PAGE_A.0)))
            .bearer_auth(crate::support::OPERATOR_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let (status, body) = t.read(send("{\"access_token\": ").await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "malformed_json");
    assert!(body["message"].as_str().unwrap().contains("EOF"), "{body}");

    let (status, body) = t.read(send("{\"active\": true}").await.unwrap()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_fields");
    assert!(
        body["message"].as_str().unwrap().contains("access_token"),
        "{body}"
    );

    let (status, body) = t
        .read(
            send("{\"access_token\": \"x\", \"colour\": 1}")
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("colour"),
        "{body}"
    );

    let (status, body) = t
        .read(send("{\"access_token\": \"\"}").await.unwrap())
        .await;
    assert_eq!(status, 422, "{body}");

    let (status, body) = t
        .api(
            Method::PATCH,
            &path("../etc"),
            Auth::Operator,
            Some(json!({"active": true})),
        )
        .await;
    assert!(status == 400 || status == 404, "{status} {body}");
}

#[tokio::test]
async fn a_cookie_request_that_is_not_json_is_refused_as_csrf() {
    let t = TestApp::spawn().await;
    let (alice, _, _) = t.connect("alice", &[PAGE_A]).await;

    let resp = t
        .http
        .patch(t.url(&path(PAGE_A.0)))
        .header("cookie", &alice)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("active=false")
        .send()
        .await
        .unwrap();
    let (status, body) = t.read(resp).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "csrf_check_failed");
    let resp = t
        .http
        .delete(t.url(&path(PAGE_A.0)))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let resp = t
        .http
        .delete(t.url(&path(PAGE_A.0)))
        .header("cookie", &alice)
        .header("x-requested-with", "fetch")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
}

#[tokio::test]
async fn health_ready_metrics_and_openapi_are_served() {
    let t = TestApp::spawn().await;
    t.api(
        Method::GET,
        "/api/integrations/facebook",
        Auth::Operator,
        None,
    )
    .await;
    for p in ["/health", "/ready"] {
        assert_eq!(
            t.http.get(t.url(p)).send().await.unwrap().status().as_u16(),
            200,
            "{p}"
        );
    }
    let metrics = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pagesync_oauth_api_requests_total"),
        "{metrics}"
    );
    let (status, doc) = t.api(Method::GET, "/openapi.json", Auth::None, None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for p in ["/health", "/ready", "/metrics", "/openapi.json"] {
        assert!(paths.contains_key(p), "{p} missing from openapi.json");
    }
    // The router and the document come from one OpenApiRouter; this checks the
    // other direction: everything described is routed (a router miss is an empty 404/405).
    for (p, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            let url = t.url(&p.replace("{page_id}", "0"));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = t
                .http
                .request(method.clone(), url)
                .bearer_auth(OPERATOR_TOKEN)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            // An event stream never ends: its answering at all shows it is routed.
            let streaming = resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v == "text/event-stream");
            let empty = !streaming && resp.bytes().await.unwrap().is_empty();
            assert!(
                status != 405 && !(status == 404 && empty),
                "{method} {p} is described but not routed ({status})"
            );
        }
    }
}
