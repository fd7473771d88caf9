//! The Graph API client's transport: one place that sends requests, paces them
//! per page, honours throttling, retries what is worth retrying, and keeps
//! tokens out of logs. The endpoints are in `endpoints.rs`.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use pagesync_schema::signature::AppSecret;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::GraphConfig;
use crate::error::{GraphError, Transport};
use crate::gate::{Admission, Gate, Scope, Wait};
use crate::token::{AccessToken, redact_url};
use crate::usage::Usage;

/// A cheap-to-clone handle on one Graph API client.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    cfg: GraphConfig,
    /// Throttle pauses and per-page pacing.
    gate: Gate,
    /// `appsecret_proof`'s key, prepared once.
    proof_key: Option<AppSecret>,
    calls_metric: String,
    throttled_metric: String,
}

/// One request, before the token is attached.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) token: Option<&'a AccessToken>,
    /// The page this call counts against (pacing and page-level throttling).
    pub(crate) page: Option<&'a str>,
    pub(crate) form: Vec<(&'a str, String)>,
    pub(crate) json: Option<Value>,
    pub(crate) kind: CallKind,
}

/// What a call may be repeated after, and whether it is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// Reads and subscriptions: safe to repeat after any failure; paced per page
    /// (the Pages API allows about 2 calls per second).
    Repeatable,
    /// The Send API: repeated only when Facebook certainly did not take the message
    /// (throttled, an error answer of a transient code or a 5xx, no connection made);
    /// never after a timeout or a lost connection, which may have sent it. Not paced:
    /// the Send API allows 300 calls per second per page.
    Send,
}

impl GraphClient {
    pub fn new(cfg: GraphConfig) -> Result<Self, GraphError> {
        let base = cfg.base_url.clone();
        // Paths are appended as segments, which only http(s) base URLs can take.
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(GraphError::Config(
                "GRAPH_API_BASE must be an http or https URL",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GraphError::Network(Transport::from(e)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                calls_metric: format!("{}_graph_calls_total", cfg.metrics_prefix),
                throttled_metric: format!("{}_throttled_milliseconds_total", cfg.metrics_prefix),
                proof_key: cfg.app_secret.as_ref().map(AppSecret::new),
                gate: Gate::new(cfg.per_page_interval),
                cfg,
            }),
        })
    }

    pub fn config(&self) -> &GraphConfig {
        &self.inner.cfg
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        let mut url = self.inner.base.clone();
        {
            let mut segs = url.path_segments_mut().expect("http base URL has a path");
            segs.pop_if_empty();
            for s in path.split('/') {
                segs.push(s);
            }
        }
        url
    }

    /// A paging link, checked to stay on the Graph API host, with any token in it removed
    /// (ours is attached when sent).
    pub(crate) fn follow(&self, next: &str) -> Result<Url, GraphError> {
        let url = Url::parse(next).map_err(|_| GraphError::ForeignLink)?;
        let base = &self.inner.base;
        if url.scheme() != base.scheme()
            || url.host_str() != base.host_str()
            || url.port_or_known_default() != base.port_or_known_default()
        {
            return Err(GraphError::ForeignLink);
        }
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "access_token" && k != "appsecret_proof")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut clean = url.clone();
        clean.set_query(None);
        if !kept.is_empty() {
            clean.query_pairs_mut().extend_pairs(kept);
        }
        Ok(clean)
    }

    pub(crate) async fn execute<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<T, GraphError> {
        let policy = &self.inner.cfg.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_retries)
            .with_jitter();
        let body = (|| self.attempt(&call))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| match e {
                GraphError::Throttled { retry_after, .. } => {
                    retry_after.is_none_or(|d| d <= policy.max_throttle_wait)
                }
                GraphError::Server { .. } | GraphError::Network(_) => true,
                GraphError::NoAnswer(_) => call.kind == CallKind::Repeatable,
                _ => false,
            })
            .notify(|e, delay| {
                tracing::warn!(
                    method = %call.method,
                    url = %redact_url(call.url.as_str()),
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "Graph API call failed; retrying"
                );
            })
            .await?;
        serde_json::from_slice(&body).map_err(|e| GraphError::Decode(Arc::new(e)))
    }

    /// Waits out an active throttle (or refuses when it is too long), then this
    /// call's paced slot.
    async fn admit(&self, page: Option<&str>, paced: bool) -> Result<(), GraphError> {
        loop {
            let wait = match self.inner.gate.admit(page, paced) {
                Admission::Go => return Ok(()),
                Admission::After(wait) => wait,
            };
            match wait {
                Wait::Paused(wait) if wait > self.inner.cfg.retry.max_throttle_wait => {
                    return Err(GraphError::Throttled {
                        status: 0,
                        code: None,
                        retry_after: Some(wait),
                    });
                }
                Wait::Paused(wait) => {
                    tracing::debug!(
                        wait_ms = wait.as_millis() as u64,
                        "throttled: waiting before the next Graph call"
                    );
                    tokio::time::sleep(wait).await;
                    metrics::counter!(self.inner.throttled_metric.clone())
                        .increment(wait.as_millis() as u64);
                }
                Wait::Paced(wait) => {
                    tokio::time::sleep(wait).await;
                    return Ok(());
                }
            }
        }
    }

    /// One try of `call`: admitted by the gate, sent, its usage headers heeded,
    /// and a refusal classified (and its throttle recorded).
    async fn attempt(&self, call: &Call<'_>) -> Result<bytes_body::Body, GraphError> {
        self.admit(call.page, call.kind == CallKind::Repeatable)
            .await?;
        let shown = redact_url(call.url.as_str());
        let resp = self.transmit(call).await.inspect_err(|_| {
            metrics::counter!(self.inner.calls_metric.clone(), "status" => "network").increment(1);
            tracing::debug!(method = %call.method, url = %shown, "Graph call: no answer");
        })?;
        let status = resp.status().as_u16();
        metrics::counter!(self.inner.calls_metric.clone(), "status" => status.to_string())
            .increment(1);
        tracing::debug!(method = %call.method, url = %shown, status, "Graph call");
        let usage = Usage::from_headers(resp.headers());
        if let Some(u) = &usage {
            self.heed_usage(Scope::of(call.page), u);
        }
        // The answer began: the request reached Facebook.
        let body = resp
            .bytes()
            .await
            .map_err(|e| GraphError::NoAnswer(Transport::from(e)))?;
        if (200..300).contains(&status) {
            return Ok(bytes_body::Body(body.to_vec()));
        }
        let regain = usage.and_then(|u| u.regain_access_in);
        let secret = call.token.map(AccessToken::expose).unwrap_or("");
        let err = GraphError::classify(status, &body, regain, secret);
        if let GraphError::Throttled { code, .. } = &err {
            self.pause_after_throttle(call, *code, regain);
            tracing::warn!(url = %shown, status, code = ?code, "Graph API throttled; pausing calls");
        }
        Err(err)
    }

    /// Sends the request with the token (and its proof) attached.
    async fn transmit(&self, call: &Call<'_>) -> Result<reqwest::Response, GraphError> {
        let mut url = call.url.clone();
        if let Some(token) = call.token {
            let mut q = url.query_pairs_mut();
            q.append_pair("access_token", token.expose());
            if let Some(key) = &self.inner.proof_key {
                q.append_pair("appsecret_proof", &key.proof(token.expose()));
            }
        }
        let mut req = self.inner.http.request(call.method.clone(), url);
        if !call.form.is_empty() {
            req = req.form(&call.form);
        }
        if let Some(json) = &call.json {
            req = req.json(json);
        }
        req.send().await.map_err(|e| {
            // Without a connection nothing reached Facebook; after one, it may have.
            if e.is_connect() {
                GraphError::Network(Transport::from(e))
            } else {
                GraphError::NoAnswer(Transport::from(e))
            }
        })
    }

    /// Facebook's usage headers: its estimate pauses the scope; near the limit,
    /// calls are spaced out instead of running into it.
    fn heed_usage(&self, scope: Scope, usage: &Usage) {
        let retry = &self.inner.cfg.retry;
        if let Some(regain) = usage.regain_access_in {
            self.inner.gate.pause(scope, regain);
        } else if usage.max_percent >= retry.slow_down_at_percent {
            self.inner.gate.pause(scope, retry.throttle_pause / 10);
        }
    }

    /// A throttle answer pauses the page's calls, or every call for an app- or
    /// user-level limit (codes 4 and 17).
    fn pause_after_throttle(&self, call: &Call<'_>, code: Option<i64>, regain: Option<Duration>) {
        let scope = match code {
            Some(4) | Some(17) => Scope::App,
            _ => Scope::of(call.page),
        };
        // Send API limits are per second: without Facebook's estimate a send
        // backs off like any retry instead of pausing the page for minutes.
        let pause = match call.kind {
            CallKind::Repeatable => Some(regain.unwrap_or(self.inner.cfg.retry.throttle_pause)),
            CallKind::Send => regain,
        };
        if let Some(pause) = pause {
            self.inner.gate.pause(scope, pause);
        }
    }
}

mod bytes_body {
    /// A response body; a newtype so `serde_json::from_slice` gets a slice.
    pub struct Body(pub Vec<u8>);
    impl std::ops::Deref for Body {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            &self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_base_urls_are_accepted() {
        for ok in [
            "https://graph.facebook.com/v26.0",
            "http://127.0.0.1:9999/v26.0",
        ] {
            let url = Url::parse(ok).unwrap();
            assert!(GraphClient::new(GraphConfig::new(url)).is_ok(), "{ok}");
        }
        for bad in [
            "mailto:someone@example.com",
            "data:text/plain,x",
            "ftp://x/v26.0",
        ] {
            let url = Url::parse(bad).unwrap();
            let err = GraphClient::new(GraphConfig::new(url)).err().expect(bad);
            assert!(err.to_string().contains("GRAPH_API_BASE"), "{err}");
        }
    }
}
