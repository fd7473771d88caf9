use reqwest::StatusCode;

use crate::app::{TestApp, VERIFY_TOKEN};

#[tokio::test]
async fn the_handshake_echoes_the_challenge_verbatim_on_both_paths() {
    let app = TestApp::spawn().await;
    for path in pagesync_ingest::WEBHOOK_PATHS {
        for challenge in ["1158201444", "CHALLENGE_ACCEPTED", "a b&c=d"] {
            let res = app
                .http
                .get(app.url(path))
                .query(&[
                    ("hub.mode", "subscribe"),
                    ("hub.verify_token", VERIFY_TOKEN),
                    ("hub.challenge", challenge),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain")
            );
            assert_eq!(res.text().await.unwrap(), challenge);
        }
    }
}

#[tokio::test]
async fn a_wrong_token_or_mode_is_forbidden_and_a_missing_parameter_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let cases: [(&[(&str, &str)], StatusCode); 6] = [
        (
            &[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", "wrong"),
                ("hub.challenge", "1"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            &[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", ""),
                ("hub.challenge", "1"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            &[
                ("hub.mode", "unsubscribe"),
                ("hub.verify_token", VERIFY_TOKEN),
                ("hub.challenge", "1"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            &[("hub.verify_token", VERIFY_TOKEN), ("hub.challenge", "1")],
            StatusCode::BAD_REQUEST,
        ),
        (
            &[("hub.mode", "subscribe"), ("hub.challenge", "1")],
            StatusCode::BAD_REQUEST,
        ),
        (
            &[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", VERIFY_TOKEN),
            ],
            StatusCode::BAD_REQUEST,
        ),
    ];
    for path in pagesync_ingest::WEBHOOK_PATHS {
        for (query, expected) in cases {
            let res = app
                .http
                .get(app.url(path))
                .query(query)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), expected, "{path} {query:?}");
            let body = res.text().await.unwrap();
            assert!(
                !body.contains(VERIFY_TOKEN),
                "the token must not be echoed: {body}"
            );
        }
    }
}
