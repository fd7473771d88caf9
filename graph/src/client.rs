//! The Graph API client: one place that sends requests, paces them per page,
//! honours throttling, retries what is worth retrying, and keeps tokens out of logs.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pagesync_schema::Platform;
use pagesync_schema::signature::AppSecret;
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use crate::error::GraphError;
use crate::token::{AccessToken, redact_url};
use crate::types::*;
use crate::usage::Usage;

/// Fields of the page node the poller snapshots (contract §5).
pub const PAGE_FIELDS: &str =
    "id,name,category,category_list,about,website,link,picture,fan_count,location,phone,emails";

/// Webhook fields a page is subscribed to (contract §5, issue 5).
pub const SUBSCRIBED_FIELDS: [&str; 9] = [
    "messages",
    "messaging_postbacks",
    "messaging_optins",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "message_reactions",
    "messaging_referrals",
    "standby",
];

/// Facebook returns details only for a conversation's 20 most recent messages.
pub const MAX_READABLE_MESSAGES: u32 = 20;

const APP_SCOPE: &str = "\u{0}app";

/// How failed calls are retried and how throttling is honoured.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First backoff delay (jittered, doubling).
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// How long to stop calling after a throttle answer without an estimate.
    pub throttle_pause: Duration,
    /// A throttle longer than this is not waited out: the call fails as `Throttled`.
    pub max_throttle_wait: Duration,
    /// Usage percentage (from the usage headers) at which calls are spaced out.
    pub slow_down_at_percent: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retries: 5,
            throttle_pause: Duration::from_secs(60),
            max_throttle_wait: Duration::from_secs(300),
            slow_down_at_percent: 90,
        }
    }
}

/// Everything the client needs.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `https://graph.facebook.com/v26.0`, or a fake's address in tests.
    pub base_url: Url,
    pub app_id: Option<String>,
    /// When set, every call carries `appsecret_proof` and OAuth exchanges can be made.
    pub app_secret: Option<SecretString>,
    pub retry: RetryPolicy,
    /// Smallest spacing between two calls for the same page (Facebook: about 2/s).
    pub per_page_interval: Option<Duration>,
    /// Metric names are `<prefix>_graph_calls_total` and `<prefix>_throttled_milliseconds_total`.
    pub metrics_prefix: String,
    pub request_timeout: Duration,
}

impl GraphConfig {
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            app_id: None,
            app_secret: None,
            retry: RetryPolicy::default(),
            per_page_interval: Some(Duration::from_millis(500)),
            metrics_prefix: "pagesync_graph".into(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A cheap-to-clone handle on one Graph API client.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    cfg: GraphConfig,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// `appsecret_proof`'s key, prepared once.
    proof_key: Option<AppSecret>,
    /// Scope (a page id, or the app) → no calls before this instant.
    blocked: Mutex<HashMap<String, Instant>>,
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
            return Err(GraphError::Decode(
                "GRAPH_API_BASE must be an http or https URL".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GraphError::Network(e.without_url().to_string()))?;
        let limiter = cfg.per_page_interval.and_then(|d| {
            Quota::with_period(d).map(|q| RateLimiter::keyed(q.allow_burst(NonZeroU32::MIN)))
        });
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                calls_metric: format!("{}_graph_calls_total", cfg.metrics_prefix),
                throttled_metric: format!("{}_throttled_milliseconds_total", cfg.metrics_prefix),
                proof_key: cfg.app_secret.as_ref().map(AppSecret::new),
                cfg,
                limiter,
                blocked: Mutex::new(HashMap::new()),
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

    // ---- endpoints -------------------------------------------------------------

    /// `GET /{page_id}?fields=...` (contract §5 fields).
    pub async fn page(&self, page_id: &str, token: &AccessToken) -> Result<PageNode, GraphError> {
        let mut url = self.url(page_id);
        url.query_pairs_mut().append_pair("fields", PAGE_FIELDS);
        let v: Value = self.get_json(url, token, Some(page_id)).await?;
        PageNode::from_value(v).map_err(GraphError::Decode)
    }

    /// `GET /{page_id}?fields=instagram_business_account`: the id of the page's
    /// linked Instagram professional account, `None` when it has none.
    pub async fn instagram_account(
        &self,
        page_id: &str,
        token: &AccessToken,
    ) -> Result<Option<String>, GraphError> {
        #[derive(Deserialize)]
        struct Node {
            #[serde(default)]
            instagram_business_account: Option<LinkedAccount>,
        }
        let mut url = self.url(page_id);
        url.query_pairs_mut()
            .append_pair("fields", "instagram_business_account");
        let node: Node = self.get_json(url, token, Some(page_id)).await?;
        Ok(node.instagram_business_account.map(|a| a.id))
    }

    /// The User Profile API: a customer's name (`GET /{psid}?fields=first_name,last_name,name`
    /// with the page token). `None` when Facebook gives no name.
    pub async fn customer_name(
        &self,
        psid: &str,
        token: &AccessToken,
        page_id: &str,
    ) -> Result<Option<String>, GraphError> {
        let mut url = self.url(psid);
        url.query_pairs_mut()
            .append_pair("fields", "first_name,last_name,name");
        let v: Value = self.get_json(url, token, Some(page_id)).await?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let joined = [field("first_name"), field("last_name")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(field("name")
            .map(str::to_owned)
            .or_else(|| (!joined.is_empty()).then_some(joined)))
    }

    /// `GET /{page_id}/conversations?platform=messenger` with nested messages, as a
    /// pager over result pages.
    pub fn conversations<'a>(
        &'a self,
        page_id: &'a str,
        token: &'a AccessToken,
        messages_limit: u32,
    ) -> Pager<'a, Conversation> {
        self.conversations_on(Platform::Messenger, page_id, token, messages_limit)
    }

    /// `GET /{page_id}/conversations?platform=<platform>`: Instagram's conversations
    /// are read through the page id and token too (contract §8).
    pub fn conversations_on<'a>(
        &'a self,
        platform: Platform,
        page_id: &'a str,
        token: &'a AccessToken,
        messages_limit: u32,
    ) -> Pager<'a, Conversation> {
        let mut url = self.url(&format!("{page_id}/conversations"));
        let limit = messages_limit.min(MAX_READABLE_MESSAGES);
        url.query_pairs_mut()
            .append_pair("platform", platform.as_str())
            .append_pair(
                "fields",
                &format!(
                    "participants,updated_time,messages.limit({limit}){{id,message,from,to,created_time,attachments}}"
                ),
            );
        Pager::new(self, url, token, Some(page_id))
    }

    /// Follows a nested `messages.paging.next` link.
    pub fn messages_after<'a>(
        &'a self,
        next: &str,
        token: &'a AccessToken,
        page_id: &'a str,
    ) -> Result<Pager<'a, GraphMessage>, GraphError> {
        let url = self.follow(next)?;
        Ok(Pager::new(self, url, token, Some(page_id)))
    }

    /// `GET /{page_id}/subscribed_apps`, every result page.
    pub async fn subscribed_apps(
        &self,
        page_id: &str,
        token: &AccessToken,
    ) -> Result<Vec<SubscribedApp>, GraphError> {
        let url = self.url(&format!("{page_id}/subscribed_apps"));
        Pager::new(self, url, token, Some(page_id))
            .collect_all()
            .await
    }

    /// `POST /{page_id}/subscribed_apps` with `subscribed_fields`.
    pub async fn subscribe_app(
        &self,
        page_id: &str,
        token: &AccessToken,
        fields: &[&str],
    ) -> Result<bool, GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.url(&format!("{page_id}/subscribed_apps")),
            token: Some(token),
            page: Some(page_id),
            form: vec![("subscribed_fields", fields.join(","))],
            json: None,
            kind: CallKind::Repeatable,
        };
        let v: Value = self.execute(call).await?;
        Ok(v.get("success").is_some_and(pagesync_schema::lenient::field::truthy))
    }

    /// `GET /me/accounts` with a user token, every result page.
    pub async fn accounts(&self, user_token: &AccessToken) -> Result<Vec<AccountPage>, GraphError> {
        let mut url = self.url("me/accounts");
        url.query_pairs_mut().append_pair(
            "fields",
            "id,name,category,category_list,tasks,access_token,instagram_business_account",
        );
        Pager::new(self, url, user_token, None).collect_all().await
    }

    /// `GET /oauth/access_token?code=...`: the login code for a user token.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenGrant, GraphError> {
        let (id, secret) = self.app_credentials()?;
        let mut url = self.url("oauth/access_token");
        url.query_pairs_mut()
            .append_pair("client_id", id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("client_secret", secret)
            .append_pair("code", code);
        self.get_json_untokened(url).await
    }

    /// `GET /oauth/access_token?grant_type=fb_exchange_token`: a long-lived user token.
    pub async fn exchange_long_lived(&self, token: &AccessToken) -> Result<TokenGrant, GraphError> {
        let (id, secret) = self.app_credentials()?;
        let mut url = self.url("oauth/access_token");
        url.query_pairs_mut()
            .append_pair("grant_type", "fb_exchange_token")
            .append_pair("client_id", id)
            .append_pair("client_secret", secret)
            .append_pair("fb_exchange_token", token.expose());
        self.get_json_untokened(url).await
    }

    fn app_credentials(&self) -> Result<(&str, &str), GraphError> {
        match (&self.inner.cfg.app_id, &self.inner.cfg.app_secret) {
            (Some(id), Some(secret)) => Ok((id, secret.expose_secret())),
            _ => Err(GraphError::Decode(
                "FACEBOOK_APP_ID and FACEBOOK_APP_SECRET are needed for OAuth exchanges".into(),
            )),
        }
    }

    // ---- plumbing --------------------------------------------------------------

    async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        token: &AccessToken,
        page: Option<&str>,
    ) -> Result<T, GraphError> {
        self.execute(Call {
            method: Method::GET,
            url,
            token: Some(token),
            page,
            form: Vec::new(),
            json: None,
            kind: CallKind::Repeatable,
        })
        .await
    }

    async fn get_json_untokened<T: DeserializeOwned>(&self, url: Url) -> Result<T, GraphError> {
        self.execute(Call {
            method: Method::GET,
            url,
            token: None,
            page: None,
            form: Vec::new(),
            json: None,
            kind: CallKind::Repeatable,
        })
        .await
    }

    /// A paging link, checked to stay on the Graph API host, with any token in it removed
    /// (ours is attached when sent).
    fn follow(&self, next: &str) -> Result<Url, GraphError> {
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
        serde_json::from_slice(&body).map_err(|e| GraphError::Decode(e.to_string()))
    }

    fn scope_key(page: Option<&str>) -> String {
        page.unwrap_or(APP_SCOPE).to_owned()
    }

    /// How long calls for `page` must still wait (page-level or app-level throttle).
    fn blocked_for(&self, page: Option<&str>) -> Option<Duration> {
        let now = Instant::now();
        let blocked = self.inner.blocked.lock().expect("throttle map lock");
        [Some(APP_SCOPE.to_owned()), page.map(str::to_owned)]
            .into_iter()
            .flatten()
            .filter_map(|k| blocked.get(&k).copied())
            .filter(|until| *until > now)
            .max()
            .map(|until| until - now)
    }

    fn block(&self, scope: String, for_: Duration) {
        let until = Instant::now() + for_;
        let mut blocked = self.inner.blocked.lock().expect("throttle map lock");
        let entry = blocked.entry(scope).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Waits out an active throttle (or refuses when it is too long), then paces per page.
    async fn admit(&self, page: Option<&str>, paced: bool) -> Result<(), GraphError> {
        while let Some(wait) = self.blocked_for(page) {
            if wait > self.inner.cfg.retry.max_throttle_wait {
                return Err(GraphError::Throttled {
                    status: 0,
                    code: None,
                    retry_after: Some(wait),
                });
            }
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "throttled: waiting before the next Graph call"
            );
            tokio::time::sleep(wait).await;
            metrics::counter!(self.inner.throttled_metric.clone())
                .increment(wait.as_millis() as u64);
        }
        if let (Some(limiter), Some(page), true) = (&self.inner.limiter, page, paced) {
            limiter.until_key_ready(&page.to_owned()).await;
        }
        Ok(())
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<bytes_body::Body, GraphError> {
        self.admit(call.page, call.kind == CallKind::Repeatable)
            .await?;
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
        let shown = redact_url(call.url.as_str());
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!(self.inner.calls_metric.clone(), "status" => "network")
                    .increment(1);
                tracing::debug!(method = %call.method, url = %shown, "Graph call: no answer");
                let unsent = e.is_connect();
                let text = e.without_url().to_string();
                // Without a connection nothing reached Facebook; after one, it may have.
                return Err(if unsent {
                    GraphError::Network(text)
                } else {
                    GraphError::NoAnswer(text)
                });
            }
        };
        let status = resp.status().as_u16();
        metrics::counter!(self.inner.calls_metric.clone(), "status" => status.to_string())
            .increment(1);
        tracing::debug!(method = %call.method, url = %shown, status, "Graph call");
        let usage = Usage::from_headers(resp.headers());
        let scope = Self::scope_key(call.page);
        if let Some(u) = usage {
            if let Some(regain) = u.regain_access_in {
                self.block(scope.clone(), regain);
            } else if u.max_percent >= self.inner.cfg.retry.slow_down_at_percent {
                // Near the limit: space calls out instead of running into it.
                self.block(scope.clone(), self.inner.cfg.retry.throttle_pause / 10);
            }
        }
        // The answer began: the request reached Facebook.
        let body = resp
            .bytes()
            .await
            .map_err(|e| GraphError::NoAnswer(e.without_url().to_string()))?;
        if (200..300).contains(&status) {
            return Ok(bytes_body::Body(body.to_vec()));
        }
        let regain = usage.and_then(|u| u.regain_access_in);
        let secret = call.token.map(AccessToken::expose).unwrap_or("");
        let err = GraphError::classify(status, &body, regain, secret);
        if let GraphError::Throttled { code, .. } = &err {
            // App- and user-level limits stop every call; page limits stop that page's.
            let scope = match code {
                Some(4) | Some(17) => APP_SCOPE.to_owned(),
                _ => scope,
            };
            // Send API limits are per second: without Facebook's estimate a send
            // backs off like any retry instead of pausing the page for minutes.
            let pause = match call.kind {
                CallKind::Repeatable => Some(regain.unwrap_or(self.inner.cfg.retry.throttle_pause)),
                CallKind::Send => regain,
            };
            if let Some(pause) = pause {
                self.block(scope, pause);
            }
            tracing::warn!(url = %shown, status, code = ?code, "Graph API throttled; pausing calls");
        }
        Err(err)
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

/// Walks an edge's result pages following `paging.next` until it is absent
/// (an empty page that still has a `next` is not the end).
pub struct Pager<'a, T> {
    client: &'a GraphClient,
    token: &'a AccessToken,
    page: Option<&'a str>,
    next: Option<Url>,
    _t: std::marker::PhantomData<T>,
}

impl<'a, T: DeserializeOwned> Pager<'a, T> {
    fn new(
        client: &'a GraphClient,
        first: Url,
        token: &'a AccessToken,
        page: Option<&'a str>,
    ) -> Self {
        Self {
            client,
            token,
            page,
            next: Some(first),
            _t: std::marker::PhantomData,
        }
    }

    /// The next result page, or `None` when paging is done.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, GraphError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let page: Paged<T> = self.client.get_json(url, self.token, self.page).await?;
        self.next = page.next().map(|n| self.client.follow(n)).transpose()?;
        Ok(Some(page.data))
    }

    pub async fn collect_all(mut self) -> Result<Vec<T>, GraphError> {
        let mut all = Vec::new();
        while let Some(items) = self.next_page().await? {
            all.extend(items);
        }
        Ok(all)
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
        for bad in ["mailto:someone@example.com", "data:text/plain,x", "ftp://x/v26.0"] {
            let url = Url::parse(bad).unwrap();
            let err = GraphClient::new(GraphConfig::new(url)).err().expect(bad);
            assert!(err.to_string().contains("GRAPH_API_BASE"), "{err}");
        }
    }
}
