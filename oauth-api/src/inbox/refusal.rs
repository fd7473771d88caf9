//! The Send API's failures as API answers, decided by Facebook's code and subcode
//! (never its message text): a refusal is 422 `facebook_error` with
//! `facebook: {code, subcode}`; Facebook away (after the Graph client's retries) is
//! 502 `facebook_unavailable`.

use pagesync_graph::GraphError;

use crate::error::ApiError;

/// What a refusal means, for the person reading the answer.
fn meaning(code: Option<i64>, subcode: Option<i64>) -> Option<&'static str> {
    Some(match (code?, subcode) {
        (10, Some(2018278)) | (10, Some(2534022)) => {
            "Facebook refused the reply: it is outside the allowed messaging window"
        }
        (551, _) | (200, Some(1545041)) => {
            "Facebook refused the reply: this person isn't available right now"
        }
        (100, Some(2018001)) => "Facebook refused the reply: no matching user found",
        (190, _) => "Facebook refused the page's token (expired or revoked): reconnect the page",
        (200..=299, _) => {
            "Facebook refused the reply: the page's token lacks the permission to message this person"
        }
        (10, _) => "Facebook's messaging policy refused the reply",
        _ => return None,
    })
}

/// The answer for a failed Send API call.
pub fn answer(e: GraphError) -> ApiError {
    let refused = |code: Option<i64>, subcode: Option<i64>, message: String| {
        let message = match meaning(code, subcode) {
            Some(m) => m.to_owned(),
            None => format!("Facebook refused the reply: {message}"),
        };
        ApiError::FacebookRefused {
            message,
            code,
            subcode,
        }
    };
    match e {
        GraphError::TokenInvalid { subcode, message } => refused(Some(190), subcode, message),
        GraphError::Permission {
            code,
            subcode,
            message,
        } => refused(Some(code), subcode, message),
        GraphError::Api {
            code,
            subcode,
            message,
            ..
        } => refused(code, subcode, message),
        GraphError::NoAnswer(_) => ApiError::FacebookUnavailable(
            "Facebook did not answer in time; the reply may or may not have been sent \
             (its echo webhook will show it if it was)"
                .to_owned(),
        ),
        other => ApiError::FacebookUnavailable(format!(
            "Facebook did not take the reply, even after retries: {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(e: GraphError) -> (i64, Option<i64>, String) {
        match answer(e) {
            ApiError::FacebookRefused {
                code,
                subcode,
                message,
            } => (code.unwrap(), subcode, message),
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn refusals_are_told_apart_by_code_and_subcode_not_by_text() {
        let perm = |code, subcode| GraphError::Permission {
            code,
            subcode,
            message: "same text".into(),
        };
        let (_, _, window) = refusal(perm(10, Some(2018278)));
        let (_, _, unavailable) = refusal(perm(200, Some(1545041)));
        let (_, _, permission) = refusal(perm(200, None));
        assert!(window.contains("window"));
        assert!(unavailable.contains("isn't available"));
        assert!(permission.contains("permission"));
        let (code, sub, text) = refusal(GraphError::Api {
            status: 400,
            code: Some(100),
            subcode: Some(2018001),
            message: "same text".into(),
        });
        assert_eq!((code, sub), (100, Some(2018001)));
        assert!(text.contains("no matching user"));
    }

    /// A real transport failure: nothing listens on the discard port.
    async fn transport_error() -> pagesync_graph::Transport {
        let e = reqwest::Client::new()
            .get("http://127.0.0.1:9/")
            .send()
            .await
            .expect_err("nothing listens on port 9");
        e.into()
    }

    #[tokio::test]
    async fn an_unknown_refusal_keeps_facebooks_text_and_an_outage_is_unavailable() {
        let (code, _, text) = refusal(GraphError::Api {
            status: 400,
            code: Some(100),
            subcode: Some(2018109),
            message: "Attachment size exceeds allowable limit".into(),
        });
        assert_eq!(code, 100);
        assert!(text.contains("Attachment size"));
        for e in [
            GraphError::Server { status: 503 },
            GraphError::NoAnswer(transport_error().await),
            GraphError::Network(transport_error().await),
        ] {
            assert_eq!(answer(e).code(), "facebook_unavailable");
        }
    }
}
