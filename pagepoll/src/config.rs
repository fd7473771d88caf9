//! The settings of a service that polls pages (the poller, and oauth-api for its
//! connect self-test), flattened into each service's `Config`.

use std::time::Duration;

use pagesync_crypto::{EncryptionKey, OldKeys, TokenCipher, parse_key, parse_old_keys};
use pagesync_graph::{GraphConfig, RetryPolicy};
use pagesync_runtime::HttpUrl;
use pagesync_runtime::config::{parse_duration, parse_secret};
use secrecy::SecretString;

/// Our Facebook app and the Graph API it calls.
#[derive(clap::Args, Debug, Clone)]
pub struct GraphArgs {
    /// Graph API base URL including the version (tests point it at a fake).
    #[arg(
        long,
        env = "GRAPH_API_BASE",
        default_value = "https://graph.facebook.com/v26.0"
    )]
    pub graph_api_base: HttpUrl,
    /// Our Facebook app id: the login dialog's `client_id`, and the app a page must
    /// list in `subscribed_apps` (a page that lost it is re-subscribed).
    #[arg(long, env = "FACEBOOK_APP_ID")]
    pub facebook_app_id: String,
    /// Facebook app secret: every Graph call carries `appsecret_proof` derived from
    /// it; oauth-api also uses it for code exchanges and self-test webhook signatures.
    #[arg(long, env = "FACEBOOK_APP_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub facebook_app_secret: SecretString,
    /// First retry delay after a Graph 5xx or network error (doubles, jittered).
    #[arg(long, env = "GRAPH_RETRY_MIN_DELAY", default_value = "500ms", value_parser = parse_duration)]
    pub graph_retry_min_delay: Duration,
}

impl GraphArgs {
    /// The Graph client of a service: our app, calls for one page spaced by
    /// `page_call_interval` (`0s`: not spaced), metrics named `<metrics_prefix>_graph_…`,
    /// and `retry` with its first delay from `GRAPH_RETRY_MIN_DELAY` (its longest
    /// delay never shorter than that).
    pub fn client_config(
        &self,
        metrics_prefix: &str,
        page_call_interval: Duration,
        retry: RetryPolicy,
    ) -> GraphConfig {
        let mut g = GraphConfig::new(self.graph_api_base.url().clone());
        g.app_id = Some(self.facebook_app_id.clone());
        g.app_secret = Some(self.facebook_app_secret.clone());
        g.per_page_interval = (!page_call_interval.is_zero()).then_some(page_call_interval);
        g.metrics_prefix = metrics_prefix.to_owned();
        g.retry = RetryPolicy {
            min_delay: self.graph_retry_min_delay,
            max_delay: retry.max_delay.max(self.graph_retry_min_delay),
            ..retry
        };
        g
    }
}

/// The keys of the stored page tokens.
#[derive(clap::Args, Debug, Clone)]
pub struct TokenKeys {
    /// Base64 of the 32-byte key that encrypts page tokens (AES-256-GCM) and decrypts them.
    #[arg(long, env = "TOKEN_ENCRYPTION_KEY", value_parser = parse_key, hide_env_values = true)]
    pub token_encryption_key: EncryptionKey,
    /// Comma-separated base64 keys that still decrypt tokens sealed before a rotation.
    #[arg(long, env = "TOKEN_ENCRYPTION_OLD_KEYS", value_parser = parse_old_keys, default_value = "", hide_env_values = true, hide_default_value = true)]
    pub token_encryption_old_keys: OldKeys,
}

impl TokenKeys {
    /// The token cipher of these keys.
    pub fn cipher(&self) -> TokenCipher {
        TokenCipher::new(
            self.token_encryption_key.clone(),
            self.token_encryption_old_keys.clone(),
        )
    }
}
