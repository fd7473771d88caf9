//! CORS for a CRM front end on another origin (contract §6, docs/inbox.md "CORS"):
//! tower-http's layer, configured from `CORS_ALLOWED_ORIGINS`.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The origins allowed to call the API from a browser, each `scheme://host[:port]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<HeaderValue>);

impl AllowedOrigins {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `router` with CORS for the listed origins: tower-http answers their
    /// preflights and marks their answers; any other origin's answer carries no
    /// `Access-Control-*` header at all (tower-http would still add the allowed
    /// methods and headers to it). Nothing is listed: `router` unchanged.
    pub fn apply(&self, router: Router) -> Router {
        let Some(layer) = self.layer() else {
            return router;
        };
        let listed = self.clone();
        router.layer(layer).layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let listed = listed.clone();
                async move { listed.only_for_listed(req, next).await }
            },
        ))
    }

    async fn only_for_listed(&self, req: Request, next: Next) -> Response {
        let allowed = req
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|o| self.0.contains(o));
        let mut resp = next.run(req).await;
        if !allowed {
            let cors: Vec<HeaderName> = resp
                .headers()
                .keys()
                .filter(|k| k.as_str().starts_with("access-control-"))
                .cloned()
                .collect();
            for name in cors {
                resp.headers_mut().remove(name);
            }
        }
        resp
    }

    /// The layer answering preflights and adding `Access-Control-Allow-*` for the
    /// listed origins only; `None` when none is listed (no CORS headers at all).
    fn layer(&self) -> Option<CorsLayer> {
        if self.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.0.clone()))
                .allow_credentials(true)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                    Method::OPTIONS,
                ])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("idempotency-key"),
                ]),
        )
    }
}

/// Parses `CORS_ALLOWED_ORIGINS`: comma-separated origins (`https://crm.example.com`,
/// `http://localhost:3000`); empty means none. A path, a wildcard or a scheme other
/// than http(s) is refused, since browsers compare the exact origin.
pub fn parse_origins(s: &str) -> Result<AllowedOrigins, String> {
    let mut origins = Vec::new();
    for raw in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        origins.push(parse_origin(raw)?);
    }
    Ok(AllowedOrigins(origins))
}

fn parse_origin(raw: &str) -> Result<HeaderValue, String> {
    let bad = |why: &str| format!("{raw:?} is not an origin ({why}): write scheme://host[:port]");
    let url = reqwest::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("an http or https origin is needed"));
    }
    let origin = url.origin().ascii_serialization();
    if origin != raw.trim_end_matches('/') {
        return Err(bad("no path, query, user or default port"));
    }
    HeaderValue::from_str(&origin).map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_read_from_a_comma_separated_list() {
        let o = parse_origins("https://crm.example.com, http://localhost:3000").unwrap();
        assert_eq!(
            o.0,
            vec![
                HeaderValue::from_static("https://crm.example.com"),
                HeaderValue::from_static("http://localhost:3000")
            ]
        );
        assert!(parse_origins("").unwrap().is_empty());
        assert!(parse_origins("").unwrap().layer().is_none());
    }

    #[test]
    fn anything_but_an_exact_origin_is_refused() {
        for bad in [
            "*",
            "crm.example.com",
            "https://crm.example.com/app",
            "ftp://crm.example.com",
            "https://crm.example.com:443",
            "https://a.test,https://b.test/x",
        ] {
            let err = parse_origins(bad).unwrap_err();
            assert!(err.contains("not an origin"), "{bad}: {err}");
        }
    }
}
