//! The poller's reads and writes of `integrations` and `poll_checkpoints` (V3 migration).

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use pagesync_schema::{PageId, Platform};

/// An integration the poller may poll.
#[derive(Clone)]
pub struct Integration {
    pub page_id: PageId,
    pub key_id: String,
    pub sealed_token: Vec<u8>,
    /// The page's linked Instagram account, polled with the page's token (§8).
    pub instagram_account: Option<PageId>,
}

impl std::fmt::Debug for Integration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Integration({})", self.page_id)
    }
}

#[derive(Debug, Default, Clone)]
pub struct Checkpoint {
    pub newest_updated_time: Option<DateTime<Utc>>,
    pub snapshot_sha256: Option<String>,
    /// The newest Instagram conversation `updated_time` seen (V11).
    pub instagram_newest_updated_time: Option<DateTime<Utc>>,
}

impl Checkpoint {
    /// The newest `updated_time` seen on one platform.
    pub fn newest(&self, platform: Platform) -> Option<DateTime<Utc>> {
        match platform {
            Platform::Messenger => self.newest_updated_time,
            Platform::Instagram => self.instagram_newest_updated_time,
        }
    }

    /// Moves one platform's newest `updated_time` forward to `seen`.
    pub fn saw(&mut self, platform: Platform, seen: DateTime<Utc>) {
        let slot = match platform {
            Platform::Messenger => &mut self.newest_updated_time,
            Platform::Instagram => &mut self.instagram_newest_updated_time,
        };
        *slot = Some(slot.map_or(seen, |n| n.max(seen)));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database query failed: {}", pagesync_runtime::connect::db_error_text(.0))]
    Query(#[from] tokio_postgres::Error),
}

/// Active integrations with a token that do not need re-authentication.
pub async fn pollable(pool: &Pool, only: Option<&PageId>) -> Result<Vec<Integration>, StoreError> {
    const SQL: &str =
        "SELECT page_id, page_token_key_id, page_token_ciphertext, instagram_account_id
        FROM integrations
        WHERE active AND status <> 'needs_reauth' AND page_token_ciphertext IS NOT NULL
          AND ($1::text IS NULL OR page_id = $1)
        ORDER BY page_id";
    let conn = pool.get().await?;
    let only = only.map(PageId::as_str);
    let rows = conn.query(SQL, &[&only]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Integration {
                page_id: PageId::parse(r.get::<_, String>(0)).ok()?,
                key_id: r.get(1),
                sealed_token: r.get(2),
                // The column's CHECK admits only safe tokens.
                instagram_account: r
                    .get::<_, Option<String>>(3)
                    .and_then(|id| PageId::parse(id).ok()),
            })
        })
        .collect())
}

pub async fn checkpoint(pool: &Pool, page: &PageId) -> Result<Checkpoint, StoreError> {
    const SQL: &str = "SELECT newest_updated_time, snapshot_sha256, instagram_newest_updated_time
        FROM poll_checkpoints WHERE page_id = $1";
    let conn = pool.get().await?;
    Ok(conn
        .query_opt(SQL, &[&page.as_str()])
        .await?
        .map(|r| Checkpoint {
            newest_updated_time: r.get(0),
            snapshot_sha256: r.get(1),
            instagram_newest_updated_time: r.get(2),
        })
        .unwrap_or_default())
}

/// Advances the checkpoint and records a successful poll, in one transaction.
pub async fn complete_poll(pool: &Pool, page: &PageId, cp: &Checkpoint) -> Result<(), StoreError> {
    const CHECKPOINT: &str = "INSERT INTO poll_checkpoints
            (page_id, newest_updated_time, snapshot_sha256, instagram_newest_updated_time)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (page_id) DO UPDATE SET
            newest_updated_time = GREATEST(poll_checkpoints.newest_updated_time, EXCLUDED.newest_updated_time),
            instagram_newest_updated_time = GREATEST(poll_checkpoints.instagram_newest_updated_time,
                                                     EXCLUDED.instagram_newest_updated_time),
            snapshot_sha256 = COALESCE(EXCLUDED.snapshot_sha256, poll_checkpoints.snapshot_sha256),
            updated_at = now()";
    const POLLED: &str =
        "UPDATE integrations SET last_poll_at = now(), last_poll_outcome = 'success',
        updated_at = now() WHERE page_id = $1";
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.execute(
        CHECKPOINT,
        &[
            &page.as_str(),
            &cp.newest_updated_time,
            &cp.snapshot_sha256,
            &cp.instagram_newest_updated_time,
        ],
    )
    .await?;
    tx.execute(POLLED, &[&page.as_str()]).await?;
    tx.commit().await?;
    Ok(())
}

/// Records a failed poll; the checkpoint stays where it was.
pub async fn record_failure(pool: &Pool, page: &PageId, outcome: &str) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE integrations SET last_poll_at = now(), last_poll_outcome = $2,
        updated_at = now() WHERE page_id = $1";
    pool.get()
        .await?
        .execute(SQL, &[&page.as_str(), &outcome])
        .await?;
    Ok(())
}

/// Code 190: the page is skipped until someone connects it again.
pub async fn mark_needs_reauth(pool: &Pool, page: &PageId, reason: &str) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE integrations SET status = 'needs_reauth', status_reason = $2,
        last_poll_at = now(), last_poll_outcome = 'needs_reauth', updated_at = now()
        WHERE page_id = $1";
    pool.get()
        .await?
        .execute(SQL, &[&page.as_str(), &reason])
        .await?;
    Ok(())
}

/// What the subscription check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    Subscribed,
    Resubscribed,
    Failed,
}

pub async fn record_subscription(
    pool: &Pool,
    page: &PageId,
    s: Subscription,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE integrations SET subscription_status = $2, subscription_checked_at = now(),
        resubscribed_count = resubscribed_count + CASE WHEN $2 = 'resubscribed' THEN 1 ELSE 0 END,
        last_resubscribed_at = CASE WHEN $2 = 'resubscribed' THEN now() ELSE last_resubscribed_at END,
        updated_at = now()
        WHERE page_id = $1";
    let status = match s {
        Subscription::Subscribed => "subscribed",
        Subscription::Resubscribed => "resubscribed",
        Subscription::Failed => "failed",
    };
    pool.get()
        .await?
        .execute(SQL, &[&page.as_str(), &status])
        .await?;
    Ok(())
}

/// Message ids the projection already holds (the projector's `messages` view), so a
/// poll does not publish again what a webhook already brought. Without that view
/// (a poller-only database) nothing is known.
pub async fn known_mids(
    pool: &Pool,
    mids: &[&str],
) -> Result<std::collections::HashSet<String>, StoreError> {
    const SQL: &str = "SELECT mid FROM messages WHERE mid = ANY($1)";
    if mids.is_empty() {
        return Ok(Default::default());
    }
    let conn = pool.get().await?;
    match conn.query(SQL, &[&mids]).await {
        Ok(rows) => Ok(rows.iter().map(|r| r.get(0)).collect()),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            Ok(Default::default())
        }
        Err(e) => Err(e.into()),
    }
}
