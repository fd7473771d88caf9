//! Every way an API request can fail, mapped once to `{"error": code, "message": text}`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::state_token::StateError;

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// A stable code, such as `not_found` or `invalid_state`.
    pub error: String,
    /// Text for a person.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("no such integration")]
    NotFound,
    #[error("no such conversation")]
    ConversationNotFound,
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the body is larger than this API accepts")]
    PayloadTooLarge,
    #[error(
        "state-changing requests need Content-Type: application/json or an X-Requested-With header"
    )]
    Csrf,
    /// Facebook refused (a token, a code, a subscription): its message, scrubbed of secrets.
    #[error("{0}")]
    Facebook(String),
    /// Facebook did not answer usefully (5xx, network, throttled).
    #[error("{0}")]
    FacebookUnavailable(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound | Self::ConversationNotFound => StatusCode::NOT_FOUND,
            Self::State(_) | Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } | Self::Facebook(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::FacebookUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound | Self::ConversationNotFound => "not_found",
            Self::State(_) => "invalid_state",
            Self::BadRequest { code, .. } | Self::Unprocessable { code, .. } => code,
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Csrf => "csrf_check_failed",
            Self::Facebook(_) => "facebook_error",
            Self::FacebookUnavailable(_) => "facebook_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database query failed"))
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Internal(anyhow::Error::new(e).context("no database connection"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(e) = &self {
            // The only place an internal cause is logged; the answer stays opaque.
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let body = ErrorBody {
            error: self.code().to_owned(),
            message: self.to_string(),
        };
        (self.status(), Json(body)).into_response()
    }
}

/// Largest JSON body the API reads: every body is a small object (a token and a flag),
/// and this bounds what requests in progress can hold in memory.
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// `Json<T>` whose rejections are our JSON errors: malformed JSON is 400, a body of
/// the wrong shape 422 (naming the field), a missing JSON content type 415, a body
/// over the limit 413.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A declared length over the limit is refused before a byte is read.
        if axum::body::HttpBody::size_hint(req.body())
            .exact()
            .is_some_and(|n| n > MAX_JSON_BODY_BYTES as u64)
        {
            return Err(ApiError::PayloadTooLarge);
        }
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
                    "malformed_json",
                    format!("malformed JSON: {}", inner(&e)),
                ),
                JsonRejection::JsonDataError(e) => {
                    ApiError::unprocessable("invalid_fields", inner(&e))
                }
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
                }
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge
                }
                other => ApiError::bad_request("bad_body", other.body_text()),
            }),
        }
    }
}

/// serde's own message (`missing field `active` at line 1 column 2`), without axum's prefix.
fn inner(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
