//! What a Graph client is made from: the base URL, our app, retries and pacing.

use std::time::Duration;

use reqwest::Url;
use secrecy::SecretString;

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
