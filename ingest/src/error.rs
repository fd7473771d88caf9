//! Every way a webhook request can fail, mapped once to an HTTP answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::body::BodyError;
use pagesync_schema::signature::SignatureError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing query parameter {0}")]
    MissingParameter(&'static str),
    #[error("hub.mode must be subscribe and hub.verify_token must match")]
    VerificationRefused,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("body is larger than {0} bytes")]
    TooLarge(usize),
    #[error(
        "an item of the delivery makes an event of {size} bytes; the event stream takes at most {max}"
    )]
    ItemTooLarge { size: usize, max: usize },
    #[error("could not read the request body")]
    BadBody,
    #[error("the body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("too many deliveries are being received at once; retry")]
    OverBudget,
    #[error("the event stream did not acknowledge the delivery in time; retry")]
    Unavailable(#[source] Option<pagesync_schema::PublishError>),
}

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingParameter(_) | Self::BadBody => StatusCode::BAD_REQUEST,
            Self::VerificationRefused => StatusCode::FORBIDDEN,
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::TooLarge(_) | Self::ItemTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) | Self::OverBudget => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `outcome` label of `pagesync_ingest_deliveries_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::MissingParameter(_) => "bad_request",
            Self::VerificationRefused => "forbidden",
            Self::Signature(SignatureError::Missing) => "missing_signature",
            Self::Signature(_) => "bad_signature",
            Self::TooLarge(_) => "too_large",
            Self::ItemTooLarge { .. } => "item_too_large",
            Self::BadBody => "bad_request",
            Self::BodyTimeout(_) => "body_timeout",
            Self::OverBudget => "over_budget",
            Self::Unavailable(_) => "unavailable",
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::MissingParameter(_) => "missing_parameter",
            Self::VerificationRefused => "verification_refused",
            Self::Signature(_) => "invalid_signature",
            Self::TooLarge(_) | Self::ItemTooLarge { .. } => "payload_too_large",
            Self::BadBody => "bad_body",
            Self::BodyTimeout(_) => "body_timeout",
            Self::OverBudget => "overloaded",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl From<BodyError> for IngestError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(max) => Self::TooLarge(max),
            BodyError::Timeout(after) => Self::BodyTimeout(after),
            BodyError::OverBudget => Self::OverBudget,
            BodyError::Read(_) => Self::BadBody,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        if let Self::ItemTooLarge { size, max } = &self {
            tracing::warn!(
                size,
                max,
                "delivery refused: one of its items is larger than NATS accepts (raise nats-server's max_payload)"
            );
        }
        if let Self::Unavailable(cause) = &self {
            match cause {
                Some(e) => tracing::warn!(error = %e, "delivery not acknowledged; answering 503"),
                None => {
                    tracing::warn!("delivery not acknowledged before the deadline; answering 503")
                }
            }
        }
        let body = serde_json::json!({"error": self.code(), "message": self.to_string()});
        (self.status(), Json(body)).into_response()
    }
}
