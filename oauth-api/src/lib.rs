//! `oauth-api`: the Facebook OAuth connect flow (signed state, sessions), page
//! tokens stored encrypted, webhook subscription and the connect self-test, and the
//! integrations API (contract §6). See docs/oauth-api.md.

pub mod admin;
pub mod config;
pub mod connect;
mod console;
pub mod cors;
pub mod coverage;
pub mod error;
mod headers;
pub mod inbox;
pub mod integrations;
pub mod login;
mod metrics;
pub mod openapi;
pub mod reencrypt;
pub mod selftest;
pub mod session;
pub mod state_token;
pub mod store;
pub mod subscribe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use deadpool_postgres::Pool;
use pagesync_crypto::TokenCipher;
use pagesync_graph::{GraphClient, GraphConfig, RetryPolicy};
use pagesync_pagepoll::PagePoller;
use pagesync_runtime::connect as deps;
use pagesync_runtime::connect::ConnectError;
use pagesync_runtime::ops::ReadyCheck;
use pagesync_runtime::{CancellationToken, HttpUrl};
use pagesync_schema::Publisher;
use secrecy::{ExposeSecret, SecretString};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::{Command, Config};
use state_token::StateSigner;

/// How long JetStream may take to acknowledge the self-test poll's publishes.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cannot build the Graph API client")]
    Graph(#[from] pagesync_graph::GraphError),
    #[error(
        "TOKEN_ENCRYPTION_KEY cannot decrypt stored page tokens sealed with key id(s) {0}: \
         set the key that sealed them, or add it to TOKEN_ENCRYPTION_OLD_KEYS"
    )]
    WrongKey(String),
    #[error("cannot read stored tokens")]
    Store(#[from] tokio_postgres::Error),
    #[error("cannot reach Postgres")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot build the HTTP client")]
    Http(#[source] reqwest::Error),
    #[error(transparent)]
    Bind(#[from] pagesync_runtime::BindError),
}

/// What every handler shares.
pub struct AppState {
    pub pool: Pool,
    pub graph: GraphClient,
    pub cipher: TokenCipher,
    pub signer: StateSigner,
    /// The one-page poll the poller runs too, for the connect self-test.
    pub poller: PagePoller,
    /// For the webhook self-test's deliveries.
    pub http: reqwest::Client,
    pub app_id: String,
    pub app_secret: SecretString,
    pub redirect_uri: HttpUrl,
    pub dialog_url: HttpUrl,
    pub webhook_url: HttpUrl,
    pub operator_token: Option<SecretString>,
    pub secure_cookies: bool,
    pub session_ttl: Duration,
    pub pending_session_ttl: Duration,
    pub self_test_timeout: Duration,
    /// Cancelled when the service begins to stop (the live feed's `stop`): long
    /// waits inside a request (event streams, the self-test) end instead of
    /// holding up the graceful shutdown.
    pub stopping: CancellationToken,
    /// Publishes the inbox's events (reply echoes, status changes).
    pub publisher: Publisher,
    pub inbox: inbox::Inbox,
}

impl AppState {
    /// The handlers' state over a connected pool and publisher.
    fn new(
        config: &Config,
        pool: Pool,
        cipher: TokenCipher,
        publisher: Publisher,
        feed: inbox::feed::Feed,
    ) -> Result<Self, BuildError> {
        let graph = GraphClient::new(graph_config(config))?;
        let poller = PagePoller::new(
            graph.clone(),
            publisher.clone(),
            pool.clone(),
            cipher.clone(),
            config.graph.facebook_app_id.clone(),
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(BuildError::Http)?;
        Ok(Self {
            pool,
            graph,
            cipher,
            signer: StateSigner::new(&config.state_token_secret),
            poller,
            http,
            app_id: config.graph.facebook_app_id.clone(),
            app_secret: config.graph.facebook_app_secret.clone(),
            redirect_uri: config.facebook_redirect_uri.clone(),
            dialog_url: config.facebook_dialog_url.clone(),
            webhook_url: config.facebook_webhook_address.clone(),
            // An empty OPERATOR_TOKEN (as compose passes an unset one) means off.
            operator_token: config
                .operator_token
                .clone()
                .filter(|t| !t.expose_secret().is_empty()),
            secure_cookies: config.secure_cookies(),
            session_ttl: config.session_ttl,
            pending_session_ttl: config.pending_session_ttl,
            self_test_timeout: config.self_test_timeout,
            stopping: feed.stop.clone(),
            publisher,
            inbox: inbox::Inbox {
                human_agent: config.messenger_human_agent,
                feed,
            },
        })
    }
}

/// A built oauth-api: connected, keys checked, listening, not yet serving.
pub struct App {
    http: pagesync_runtime::HttpService,
    pruner: session::Pruner,
    listener: inbox::feed::Listener,
}

impl App {
    /// Connects to NATS (stream created when missing) and Postgres (migrated), checks
    /// that the configured keys open every stored token, and binds the listener.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let nats = deps::nats(&config.nats, "pagesync-oauth-api", ACK_TIMEOUT).await?;
        let pool = deps::postgres(&config.database).await?;
        let cipher = config.keys.cipher();
        check_keys(&pool, &cipher).await?;
        let publisher = Publisher::new(nats.js.clone(), config.nats.nats_subject_prefix.clone());
        let feed = inbox::feed::Feed::default();
        let listener = inbox::feed::Listener {
            feed: feed.clone(),
            pool: pool.clone(),
            database_url: deps::pg_config(&config.database),
            human_agent: config.messenger_human_agent,
        };
        let pruner = session::Pruner {
            pool: pool.clone(),
            every: config.session_prune_interval,
        };
        let ready = pagesync_runtime::ops::nats_and_postgres(nats.client.clone(), pool.clone());
        let state = AppState::new(&config, pool, cipher, publisher, feed)?;
        let router = router(Arc::new(state), ready, &config.cors_allowed_origins);
        let http = pagesync_runtime::HttpService::bind(
            "oauth-api",
            config.oauth_api_addr,
            router,
            config.http_limits(),
        )
        .await?;
        Ok(Self {
            http,
            pruner,
            listener,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Serves (and prunes expired sessions) until `shutdown` is cancelled, then lets
    /// in-flight requests finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        // Its own token: the pruner stops too when serving ends on an error.
        let stop_pruning = shutdown.child_token();
        let pruning = tokio::spawn(self.pruner.run_until_stopped(stop_pruning.clone()));
        // The live feed and every event stream end with serving, so the graceful
        // shutdown does not wait on streams that never end.
        let feed_stop = self.listener.feed.stop.clone();
        let listening = tokio::spawn(self.listener.run_until_stopped(feed_stop.clone()));
        let on_shutdown = shutdown.clone();
        let stop_streams = feed_stop.clone();
        tokio::spawn(async move {
            on_shutdown.cancelled().await;
            stop_streams.cancel();
        });
        let served = self.http.run_until_stopped(shutdown).await;
        stop_pruning.cancel();
        feed_stop.cancel();
        if let Err(e) = listening.await {
            tracing::error!(error = %e, "the live feed failed");
        }
        if let Err(e) = pruning.await {
            tracing::error!(error = %e, "the session pruner failed");
        }
        served
    }
}

/// Refuses to start when a stored token was sealed by a key we do not have.
pub async fn check_keys(pool: &Pool, cipher: &TokenCipher) -> Result<(), BuildError> {
    let conn = pool.get().await?;
    let unknown: Vec<String> = store::stored_key_ids(&**conn)
        .await?
        .into_iter()
        // Key ids name their key: an unknown id means a key we were not given.
        .filter(|id| cipher.decrypt(id, &[], "").is_err_and(is_unknown_key))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(BuildError::WrongKey(unknown.join(", ")))
    }
}

fn is_unknown_key(e: pagesync_crypto::CryptoError) -> bool {
    matches!(e, pagesync_crypto::CryptoError::UnknownKey(_))
}

/// oauth-api's Graph client: a person is waiting for the answer, so fewer and
/// shorter retries, and long throttles fail fast instead of being waited out.
fn graph_config(config: &Config) -> GraphConfig {
    let retry = RetryPolicy {
        max_delay: Duration::from_secs(10),
        max_retries: 3,
        max_throttle_wait: Duration::from_secs(10),
        ..RetryPolicy::default()
    };
    config
        .graph
        .client_config("pagesync_oauth_api", config.graph_page_call_interval, retry)
}

/// The service's routes and, from the same declarations, their OpenAPI document
/// (without the operational endpoints, which [`router`] adds).
pub fn routes() -> (Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let api = inbox::read_routes(OpenApiRouter::new())
        .routes(routes!(integrations::list))
        .routes(routes!(
            integrations::get_one,
            integrations::put,
            integrations::patch,
            integrations::delete
        ))
        .merge(inbox::reply::routes())
        .layer(axum::middleware::from_fn(integrations::csrf_guard));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(login::login))
        .routes(routes!(login::callback))
        .merge(api)
        .merge(admin::routes())
        .routes(routes!(openapi::document))
        .split_for_parts()
}

/// The API, the console pages (not in the OpenAPI document: they are for people).
fn app_routes() -> (Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let (api, doc) = routes();
    (api.merge(console::routes()), doc)
}

fn router(state: Arc<AppState>, ready: ReadyCheck, cors: &cors::AllowedOrigins) -> Router {
    let (routes, mut doc) = app_routes();
    openapi::add_ops_paths(&mut doc);
    let app = routes
        .with_state(state)
        .layer(DefaultBodyLimit::max(error::MAX_JSON_BODY_BYTES))
        .layer(Extension(Arc::new(doc)))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .merge(pagesync_runtime::ops::router(ready));
    // Outermost, so a preflight is answered before authentication.
    cors.apply(headers::secured(app))
}

/// A request span with the path only: the callback's query holds the login code.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
}
