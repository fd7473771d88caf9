//! The connect flow after a valid callback: code → user token → long-lived token →
//! every page of `/me/accounts` → per page: token sealed and stored, page linked to
//! the user, webhooks subscribed → self-test → the answer of contract §6.

use futures::future::join_all;
use pagesync_crypto::Sealed;
use pagesync_graph::{AccessToken, AccountPage, GraphError};
use pagesync_runtime::ErrorChain;
use pagesync_schema::PageId;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::selftest::{self, TestEntry};
use crate::store::{self, Connection};
use crate::subscribe::ensure_subscribed;

/// The callback's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectAnswer {
    pub user_uuid: Uuid,
    pub pages: PageList,
    pub webhook_test: Vec<TestEntry>,
    pub polling_test: Vec<TestEntry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageList {
    /// The pages as `/me/accounts` listed them, without their tokens.
    pub data: Vec<Value>,
}

/// A page after storage and subscription: what the self-test starts from.
pub struct PageSetup {
    pub raw_id: String,
    pub page: Result<PageId, String>,
    pub name: Option<String>,
    pub stored: Result<Sealed, String>,
    pub subscribed: Result<(), String>,
}

/// Code → user token → long-lived token → every page of `/me/accounts`: the
/// steps where Facebook vouches for the person, before anything is stored.
pub async fn authorize(state: &AppState, code: &str) -> Result<Vec<AccountPage>, ApiError> {
    let short = state
        .graph
        .exchange_code(code, state.redirect_uri.as_str())
        .await
        .map_err(oauth_error)?;
    let long = state
        .graph
        .exchange_long_lived(&short.access_token)
        .await
        .map_err(oauth_error)?;
    state
        .graph
        .accounts(&long.access_token)
        .await
        .map_err(oauth_error)
}

/// Stores, links and subscribes every page for `user`, then self-tests them.
pub async fn connect_pages(
    state: &AppState,
    user: Uuid,
    accounts: &[AccountPage],
) -> ConnectAnswer {
    tracing::info!(user_uuid = %user, pages = accounts.len(), "connecting pages");
    let mut setups = Vec::with_capacity(accounts.len());
    for account in accounts {
        setups.push(set_up_page(state, user, account).await);
    }
    let results = join_all(setups.iter().map(|s| selftest::run(state, s))).await;
    let (mut webhook_test, mut polling_test) = (Vec::new(), Vec::new());
    for (webhook, polling) in results {
        webhook_test.extend(webhook);
        polling_test.extend(polling);
    }
    ConnectAnswer {
        user_uuid: user,
        pages: PageList {
            data: accounts.iter().map(page_json).collect(),
        },
        webhook_test,
        polling_test,
    }
}

/// Stores, links and subscribes one page; each failure is kept for its results.
async fn set_up_page(state: &AppState, user: Uuid, account: &AccountPage) -> PageSetup {
    let page = PageId::parse(account.id.clone()).map_err(|e| e.to_string());
    let mut setup = PageSetup {
        raw_id: account.id.clone(),
        page: page.clone(),
        name: account.name.clone(),
        stored: Err("page id is not valid".into()),
        subscribed: Err("page was not stored".into()),
    };
    let Ok(page) = page else {
        tracing::warn!("Facebook listed a page whose id is not a safe token; skipped");
        return setup;
    };
    let sealed = state
        .cipher
        .encrypt(account.access_token.expose(), page.as_str());
    let conn = Connection {
        page: &page,
        name: account.name.as_deref(),
        sealed: &sealed,
        active: true,
        owner: Some(user),
    };
    let instagram = account
        .instagram_business_account
        .as_ref()
        .and_then(|a| instagram_id(&page, &a.id));
    setup.stored = store_page(state, &conn, Some(instagram.as_ref()))
        .await
        .map(|()| sealed);
    if setup.stored.is_err() {
        return setup;
    }
    setup.subscribed = subscribe(state, &page, &account.access_token).await;
    setup
}

/// Stores the page and, when `instagram` is known (`Some`), its Instagram link.
async fn store_page(
    state: &AppState,
    conn: &Connection<'_>,
    instagram: Option<Option<&PageId>>,
) -> Result<(), String> {
    let result: Result<(), ApiError> = async {
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        store::upsert_integration(&*tx, conn).await?;
        if let Some(account) = instagram {
            store::link_instagram(&*tx, conn.page, account).await?;
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    result.map_err(|e| {
        tracing::error!(page_id = %conn.page, error = %format!("{e:#}"), "could not store page");
        "the page could not be stored; try again".to_owned()
    })
}

/// The linked Instagram account's id as a safe token; one that is not is ignored.
pub fn instagram_id(page: &PageId, raw: &str) -> Option<PageId> {
    match PageId::parse(raw) {
        Ok(account) => Some(account),
        Err(e) => {
            tracing::warn!(page_id = %page, error = %e, "Instagram account id is not a safe token; not linked");
            None
        }
    }
}

/// The page's Instagram account read with its token (a manual connect): `None`
/// when reading it failed, so an existing link is kept; the failure is logged.
pub async fn read_instagram(
    state: &AppState,
    page: &PageId,
    token: &AccessToken,
) -> Option<Option<PageId>> {
    match state.graph.instagram_account(page.as_str(), token).await {
        Ok(account) => Some(account.and_then(|id| instagram_id(page, &id))),
        Err(e) => {
            tracing::warn!(page_id = %page, error = %ErrorChain(&e), "could not read the page's Instagram account; link unchanged");
            None
        }
    }
}

/// Subscribes the page and records the outcome on the integration.
pub async fn subscribe(state: &AppState, page: &PageId, token: &AccessToken) -> Result<(), String> {
    let result = ensure_subscribed(&state.graph, &state.app_id, page, token).await;
    if let Err(e) = &result {
        tracing::warn!(page_id = %page, error = %ErrorChain(e), "webhook subscription failed");
    }
    if let Err(e) = record_subscription(state, page, result.is_ok()).await {
        tracing::warn!(page_id = %page, error = %ErrorChain(&e), "could not record the subscription");
    }
    result
        .map(|_| ())
        .map_err(|e| format!("webhook subscription failed: {e}"))
}

async fn record_subscription(state: &AppState, page: &PageId, ok: bool) -> Result<(), ApiError> {
    let client = state.pool.get().await?;
    store::record_subscription(&**client, page, ok).await?;
    Ok(())
}

/// A page of `/me/accounts` as shown: everything but its token.
fn page_json(a: &AccountPage) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "category": a.category,
        "category_list": a.category_list,
        "tasks": a.tasks,
    })
}

/// Facebook refusing the code or token is the client's problem (400); Facebook
/// not answering is ours (502).
fn oauth_error(e: GraphError) -> ApiError {
    match e {
        GraphError::TokenInvalid { .. }
        | GraphError::Permission { .. }
        | GraphError::Api { .. } => {
            ApiError::bad_request("oauth_failed", format!("Facebook refused the login: {e}"))
        }
        other => ApiError::FacebookUnavailable(format!("Facebook did not answer: {other}")),
    }
}
