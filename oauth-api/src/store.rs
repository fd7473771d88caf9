//! oauth-api's reads and writes: users, sessions, state nonces (V4), pending sessions (V7),
//! integrations (V3, shared with the poller), and page ownership (V1).

use chrono::{DateTime, Utc};
use pagesync_crypto::Sealed;
use pagesync_schema::PageId;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Who may see a row: an operator sees every page, a user only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Operator,
    User(Uuid),
}

impl Caller {
    pub fn owner_filter(&self) -> Option<Uuid> {
        match self {
            Self::Operator => None,
            Self::User(u) => Some(*u),
        }
    }
}

// ---- users and sessions -----------------------------------------------------------

/// A session before (pending) or after (authenticated) a completed connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// `pending_sessions`: a login under way; its uuid has no `users` row yet.
    Pending,
    /// `sessions`: a person who completed a connect.
    Authenticated,
}

/// The user and kind of an unexpired session of either kind.
pub async fn find_session(
    c: &impl GenericClient,
    id_sha256: &[u8],
) -> Result<Option<(Uuid, SessionKind)>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "SELECT user_id, true FROM sessions WHERE id_sha256 = $1 AND expires_at > now()
             UNION ALL
             SELECT user_id, false FROM pending_sessions WHERE id_sha256 = $1 AND expires_at > now()",
            &[&id_sha256],
        )
        .await?;
    Ok(row.map(|r| {
        let kind = if r.get(1) {
            SessionKind::Authenticated
        } else {
            SessionKind::Pending
        };
        (r.get(0), kind)
    }))
}

/// Deletes a session of either kind; returns its user when it was still live. Two
/// requests ending the same session: the second waits on the row lock and gets `None`.
pub async fn end_session(
    c: &impl GenericClient,
    id_sha256: &[u8],
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    Ok(c.query_opt(
        "WITH s AS (DELETE FROM sessions WHERE id_sha256 = $1 RETURNING user_id, expires_at),
              p AS (DELETE FROM pending_sessions WHERE id_sha256 = $1 RETURNING user_id, expires_at)
         SELECT user_id FROM (SELECT * FROM s UNION ALL SELECT * FROM p) AS ended
         WHERE expires_at > now()",
        &[&id_sha256],
    )
    .await?
    .map(|r| r.get(0)))
}

/// Stores a session. An authenticated one records its user first (once: a
/// returning user keeps its row); a pending one has no user yet, its uuid only
/// travels in the OAuth state.
pub async fn create_session(
    c: &impl GenericClient,
    kind: SessionKind,
    id_sha256: &[u8],
    user: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    let table = match kind {
        SessionKind::Pending => "pending_sessions",
        SessionKind::Authenticated => {
            c.execute(
                "INSERT INTO users (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING",
                &[&user],
            )
            .await?;
            "sessions"
        }
    };
    c.execute(
        &format!("INSERT INTO {table} (id_sha256, user_id, expires_at) VALUES ($1, $2, $3)"),
        &[&id_sha256, &user, &expires_at],
    )
    .await?;
    Ok(())
}

/// Deletes expired sessions: (authenticated, pending) rows removed.
pub async fn prune_sessions(c: &impl GenericClient) -> Result<(u64, u64), tokio_postgres::Error> {
    let sessions = c
        .execute("DELETE FROM sessions WHERE expires_at <= now()", &[])
        .await?;
    let pending = c
        .execute(
            "DELETE FROM pending_sessions WHERE expires_at <= now()",
            &[],
        )
        .await?;
    Ok((sessions, pending))
}

/// Records a state's nonce; false when it was recorded before (a replay).
pub async fn spend_nonce(
    c: &impl GenericClient,
    nonce: &str,
    issued_at: DateTime<Utc>,
) -> Result<bool, tokio_postgres::Error> {
    let inserted = c
        .execute(
            "INSERT INTO oauth_state_nonces (nonce, issued_at) VALUES ($1, $2)
             ON CONFLICT (nonce) DO NOTHING",
            &[&nonce, &issued_at],
        )
        .await?;
    // A nonce older than twice a state's life can no longer pass the age check.
    c.execute(
        "DELETE FROM oauth_state_nonces WHERE issued_at < now() - interval '20 minutes'",
        &[],
    )
    .await?;
    Ok(inserted == 1)
}

// ---- integrations -----------------------------------------------------------------

mod instagram;
pub use instagram::link_instagram;

/// A page token to store, already sealed.
pub struct Connection<'a> {
    pub page: &'a PageId,
    pub name: Option<&'a str>,
    pub sealed: &'a Sealed,
    pub active: bool,
    /// `None` keeps the current owner (an operator connecting by hand).
    pub owner: Option<Uuid>,
}

/// Stores (or replaces) a page's token and activation, clears `needs_reauth`,
/// and records the owner on the page so the projector files it under the user.
/// Returns true when the integration is new.
pub async fn upsert_integration(
    c: &impl GenericClient,
    conn: &Connection<'_>,
) -> Result<bool, tokio_postgres::Error> {
    const PAGE: &str = "INSERT INTO pages (page_id, owner_user_id) VALUES ($1, $2)
        ON CONFLICT (page_id) DO UPDATE
        SET owner_user_id = COALESCE(EXCLUDED.owner_user_id, pages.owner_user_id)";
    const INTEGRATION: &str = "INSERT INTO integrations
            (page_id, owner_user_id, page_token_ciphertext, page_token_key_id, active, status, name)
        VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 THEN 'active' ELSE 'inactive' END, $6)
        ON CONFLICT (page_id) DO UPDATE SET
            owner_user_id = COALESCE(EXCLUDED.owner_user_id, integrations.owner_user_id),
            page_token_ciphertext = EXCLUDED.page_token_ciphertext,
            page_token_key_id = EXCLUDED.page_token_key_id,
            active = EXCLUDED.active,
            status = EXCLUDED.status,
            status_reason = NULL,
            name = COALESCE(EXCLUDED.name, integrations.name),
            updated_at = now()
        RETURNING (xmax = 0)";
    let page = conn.page.as_str();
    c.execute(PAGE, &[&page, &conn.owner]).await?;
    let row = c
        .query_one(
            INTEGRATION,
            &[
                &page,
                &conn.owner,
                &conn.sealed.bytes,
                &conn.sealed.key_id,
                &conn.active,
                &conn.name,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// The owner of an integration, if it exists (`Some(None)`: no owner).
pub async fn integration_owner(
    c: &impl GenericClient,
    page: &PageId,
) -> Result<Option<Option<Uuid>>, tokio_postgres::Error> {
    Ok(c.query_opt(
        "SELECT owner_user_id FROM integrations WHERE page_id = $1",
        &[&page.as_str()],
    )
    .await?
    .map(|r| r.get(0)))
}

/// Records what the subscription step found (the poller keeps it current later).
pub async fn record_subscription(
    c: &impl GenericClient,
    page: &PageId,
    ok: bool,
) -> Result<(), tokio_postgres::Error> {
    let status = if ok { "subscribed" } else { "failed" };
    c.execute(
        "UPDATE integrations SET subscription_status = $2, subscription_checked_at = now()
         WHERE page_id = $1",
        &[&page.as_str(), &status],
    )
    .await?;
    Ok(())
}

/// An integration as the API shows it: never a token.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Integration)]
pub struct IntegrationView {
    pub page_id: String,
    /// The page's name as Facebook gave it at connect time.
    #[schema(required = true)]
    pub name: Option<String>,
    pub active: bool,
    /// `active`, `inactive` or `needs_reauth`.
    #[schema(pattern = "^(active|inactive|needs_reauth)$")]
    pub status: String,
    pub updated_at: DateTime<Utc>,
    #[schema(required = true)]
    pub last_webhook_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_poll_at: Option<DateTime<Utc>>,
    pub webhook_url: String,
    /// The page's linked Instagram professional account (contract §8), or null.
    #[schema(required = true)]
    pub instagram_account_id: Option<String>,
    /// Messages first seen by webhook, only by poll, or by send (issue 11).
    pub webhook_coverage: crate::coverage::WebhookCoverage,
}

// The last webhook: the newest `receivedat` of the ingest events the projector
// applied for the page (the projector maintains the column).
const VIEW: &str = "SELECT i.page_id, i.name, i.active,
        CASE WHEN i.status = 'needs_reauth' THEN 'needs_reauth'
             WHEN i.active THEN 'active' ELSE 'inactive' END,
        i.updated_at,
        i.last_webhook_at,
        i.last_poll_at,
        i.instagram_account_id
    FROM integrations i
    WHERE ($1::uuid IS NULL OR i.owner_user_id = $1)
      AND ($2::text IS NULL OR i.page_id = $2)
    ORDER BY i.page_id";

pub async fn list_integrations(
    c: &impl GenericClient,
    caller: Caller,
    page: Option<&PageId>,
    webhook_url: &str,
) -> Result<Vec<IntegrationView>, tokio_postgres::Error> {
    let owner = caller.owner_filter();
    let page = page.map(PageId::as_str);
    let rows = c.query(VIEW, &[&owner, &page]).await?;
    let accounts: Vec<&str> = rows
        .iter()
        .flat_map(|r| [r.get::<_, Option<&str>>(0), r.get(7)])
        .flatten()
        .collect();
    let coverage = crate::coverage::counts(c, &accounts).await?;
    Ok(rows
        .iter()
        .map(|r| IntegrationView {
            webhook_coverage: crate::coverage::of(&coverage, r.get(0), r.get(7)),
            page_id: r.get(0),
            name: r.get(1),
            active: r.get(2),
            status: r.get(3),
            updated_at: r.get(4),
            last_webhook_at: r.get(5),
            last_poll_at: r.get(6),
            webhook_url: webhook_url.to_owned(),
            instagram_account_id: r.get(7),
        })
        .collect())
}

/// Activates or deactivates a visible integration; false when there is none.
pub async fn set_active(
    c: &impl GenericClient,
    caller: Caller,
    page: &PageId,
    active: bool,
) -> Result<bool, tokio_postgres::Error> {
    let n = c
        .execute(
            "UPDATE integrations SET active = $3,
                 status = CASE WHEN status = 'needs_reauth' THEN status
                               WHEN $3 THEN 'active' ELSE 'inactive' END,
                 updated_at = now()
             WHERE page_id = $1 AND ($2::uuid IS NULL OR owner_user_id = $2)",
            &[&page.as_str(), &caller.owner_filter(), &active],
        )
        .await?;
    Ok(n == 1)
}

/// Removes a visible integration and its token (the poller stops: its checkpoint
/// goes with it); the page and its history stay. False when there is none.
pub async fn delete_integration(
    c: &impl GenericClient,
    caller: Caller,
    page: &PageId,
) -> Result<bool, tokio_postgres::Error> {
    let n = c
        .execute(
            "DELETE FROM integrations WHERE page_id = $1 AND ($2::uuid IS NULL OR owner_user_id = $2)",
            &[&page.as_str(), &caller.owner_filter()],
        )
        .await?;
    Ok(n == 1)
}

/// Every stored token with its key id.
pub async fn sealed_tokens(
    c: &impl GenericClient,
) -> Result<Vec<(String, Sealed)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT page_id, page_token_key_id, page_token_ciphertext FROM integrations
             WHERE page_token_ciphertext IS NOT NULL ORDER BY page_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Sealed {
                    key_id: r.get(1),
                    bytes: r.get(2),
                },
            )
        })
        .collect())
}

/// Replaces a token's ciphertext if it is still the one that was read.
pub async fn replace_sealed(
    c: &impl GenericClient,
    page: &str,
    old: &Sealed,
    new: &Sealed,
) -> Result<bool, tokio_postgres::Error> {
    let n = c
        .execute(
            "UPDATE integrations SET page_token_ciphertext = $3, page_token_key_id = $4
             WHERE page_id = $1 AND page_token_ciphertext = $2",
            &[&page, &old.bytes, &new.bytes, &new.key_id],
        )
        .await?;
    Ok(n == 1)
}

/// The distinct key ids of stored tokens.
pub async fn stored_key_ids(c: &impl GenericClient) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT DISTINCT page_token_key_id FROM integrations
             WHERE page_token_key_id IS NOT NULL ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
