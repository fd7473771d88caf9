//! The console's CSS and JavaScript, compiled into the binary and served with
//! cache headers: no CDN, no build step.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    const fn css(name: &'static str, body: &'static str) -> Self {
        let content_type = "text/css; charset=utf-8";
        Self {
            name,
            content_type,
            body,
        }
    }

    const fn svg(name: &'static str, body: &'static str) -> Self {
        let content_type = "image/svg+xml";
        Self {
            name,
            content_type,
            body,
        }
    }

    const fn js(name: &'static str, body: &'static str) -> Self {
        let content_type = "text/javascript; charset=utf-8";
        Self {
            name,
            content_type,
            body,
        }
    }
}

const ASSETS: [Asset; 5] = [
    Asset::svg("favicon.svg", include_str!("../../assets/favicon.svg")),
    Asset::css("console.css", include_str!("../../assets/console.css")),
    Asset::js("console.js", include_str!("../../assets/console.js")),
    Asset::js("settings.js", include_str!("../../assets/settings.js")),
    Asset::js("inbox.js", include_str!("../../assets/inbox.js")),
];

/// A digest of every asset: the `?v=` of asset URLs and the `ETag`.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut h = Sha256::new();
        for a in &ASSETS {
            h.update(a.name.as_bytes());
            h.update(a.body.as_bytes());
        }
        hex::encode(&h.finalize()[..8])
    })
}

pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{}\"", version());
    // URLs carry the version, so a day of caching never serves a stale release;
    // revalidation by ETag covers a URL without it.
    let cache = HeaderValue::from_static("public, max-age=86400");
    let etag_value = HeaderValue::from_str(&etag).expect("hex in quotes is a valid header");
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return (
            StatusCode::NOT_MODIFIED,
            [(CACHE_CONTROL, cache), (ETAG, etag_value)],
        )
            .into_response();
    }
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (CACHE_CONTROL, cache),
            (ETAG, etag_value),
        ],
        asset.body,
    )
        .into_response()
}
