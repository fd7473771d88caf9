//! Security headers on every answer, set once for all routes (the 404 fallback and
//! the operational endpoints included). A handler that sets one keeps its value.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

/// `nosniff`; `no-store`, since every answer is per user or per moment (sessions,
/// tokens, integrations); no framing (clickjacking of the connect flow); and
/// `no-referrer`, so the login redirect's `state` never leaks to the next site.
pub fn secured(router: Router) -> Router {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    router
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::CACHE_CONTROL, "no-store"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(
            header::CONTENT_SECURITY_POLICY,
            "frame-ancestors 'none'",
        ))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
}
