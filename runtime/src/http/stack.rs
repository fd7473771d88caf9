//! The tower stack every request passes: a cap on requests in progress that sheds
//! the excess with 503 instead of queueing it, and a deadline on the whole request.

use std::convert::Infallible;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_http::timeout::TimeoutLayer;

use super::HttpLimits;
use super::connections::Slot;

pub(crate) type AppService = BoxCloneSyncService<Request<Body>, Response, Infallible>;

const OVERLOADED: &str =
    r#"{"error":"overloaded","message":"the service is at its limit; retry shortly"}"#;

/// The answer to a connection refused before it was read (every connection busy).
pub(crate) const SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 77\r\n\r\n\
{\"error\":\"overloaded\",\"message\":\"the service is at its limit; retry shortly\"}";

pub(crate) fn service(app: axum::Router, limits: &HttpLimits, name: &'static str) -> AppService {
    let stack = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |e: BoxError| async move {
            shed_request(name, e)
        }))
        .load_shed()
        .concurrency_limit(limits.max_requests)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .service(app);
    BoxCloneSyncService::new(stack)
}

/// The only error the stack makes is "over the request cap" (the router is infallible).
fn shed_request(name: &'static str, e: BoxError) -> Response {
    if !e.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!(error = %e, "request failed in the HTTP stack; answering 503");
    }
    metrics::counter!("pagesync_http_requests_shed_total", "service" => name).increment(1);
    overloaded()
}

/// 503 `overloaded` with `Retry-After: 1`.
pub fn overloaded() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::RETRY_AFTER, HeaderValue::from_static("1")),
        ],
        OVERLOADED,
    )
        .into_response()
}

/// hyper's view of the stack for one connection, marking it busy during each request.
pub(crate) fn hyper_service(
    service: AppService,
    slot: &Slot,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send + 'static,
> + Send
+ 'static {
    let enter = slot.in_request();
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let busy = enter();
        let service = service.clone();
        async move {
            let response = service.oneshot(req.map(Body::new)).await;
            drop(busy);
            response
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shed_answer_declares_its_body_length() {
        let text = std::str::from_utf8(SHED_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, OVERLOADED);
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
    }
}
