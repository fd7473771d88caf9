//! The conversation a write (a reply, a status change) goes to: who may see it,
//! its platform, the page whose token and Send API serve it, and when its
//! customer last wrote.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use chrono::{DateTime, Utc};
use pagesync_graph::AccessToken;
use pagesync_schema::{PageId, Platform, Psid};
use tokio_postgres::GenericClient;

use crate::AppState;
use crate::error::ApiError;
use crate::store::Caller;

/// A conversation the caller may write to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The account: a Facebook page, or an Instagram account (contract §8).
    pub page: PageId,
    pub psid: Psid,
    pub platform: Platform,
    /// The Facebook page whose token sends: the page itself, or the page an
    /// Instagram account is linked to (`None`: an Instagram account not linked).
    pub sending_page: Option<PageId>,
}

const NO_CONVERSATION: ApiError = ApiError::NoSuch("conversation");

pub use super::list::ConversationPath;

/// The ids of the path; one that cannot be an id names no conversation (404).
pub fn ids(
    path: Result<Path<ConversationPath>, PathRejection>,
) -> Result<(PageId, Psid), ApiError> {
    let Path(ConversationPath { page_id, psid }) = path.map_err(|_| NO_CONVERSATION)?;
    let page = PageId::parse(page_id).map_err(|_| NO_CONVERSATION)?;
    let psid = Psid::parse(psid).map_err(|_| NO_CONVERSATION)?;
    Ok((page, psid))
}

/// The conversation, or 404 when it is unknown or not the caller's.
pub async fn visible(
    state: &AppState,
    caller: Caller,
    page: &PageId,
    psid: &Psid,
) -> Result<Target, ApiError> {
    let conn = state.pool.get().await?;
    find(&**conn, caller, page, psid)
        .await?
        .ok_or(NO_CONVERSATION)
}

// An Instagram account belongs to the owner of the page it is linked to.
const FIND: &str = "SELECT p.platform,
        CASE WHEN p.platform = 'instagram' THEN p.linked_page_id ELSE p.page_id END
    FROM conversations c
    JOIN pages p ON p.page_id = c.page_id
    LEFT JOIN pages lp ON lp.page_id = p.linked_page_id
    WHERE c.page_id = $1 AND c.psid = $2
      AND ($3::uuid IS NULL OR coalesce(lp.owner_user_id, p.owner_user_id) = $3)";

/// The conversation, when it exists and the caller may see it.
pub async fn find(
    c: &impl GenericClient,
    caller: Caller,
    page: &PageId,
    psid: &Psid,
) -> Result<Option<Target>, ApiError> {
    let owner = match caller {
        Caller::Operator => None,
        Caller::User(u) => Some(u),
    };
    let Some(row) = c
        .query_opt(FIND, &[&page.as_str(), &psid.as_str(), &owner])
        .await?
    else {
        return Ok(None);
    };
    let platform: String = row.get(0);
    let platform = platform
        .parse::<Platform>()
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("pages.platform")))?;
    let sending_page = row
        .get::<_, Option<String>>(1)
        .map(PageId::parse)
        .transpose()
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("a stored page id")))?;
    Ok(Some(Target {
        page: page.clone(),
        psid: psid.clone(),
        platform,
        sending_page,
    }))
}

/// The time of the customer's last message: the newest own `timestamp` of the
/// conversation's incoming messages (never when we received them), as the
/// projector keeps it in `conversations.last_in_ms` — the column the list's
/// `reply_window` reads, so the list and the reply route always agree.
pub async fn last_customer_message(
    c: &impl GenericClient,
    target: &Target,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let row = c
        .query_opt(
            "SELECT last_in_ms FROM conversations WHERE page_id = $1 AND psid = $2",
            &[&target.page.as_str(), &target.psid.as_str()],
        )
        .await?;
    Ok(row
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .and_then(pagesync_schema::fbtime::from_millis))
}

/// Why a page cannot send.
fn unusable(page: &PageId, why: &str) -> ApiError {
    ApiError::Conflict {
        code: "page_not_connected",
        message: format!("page {page} cannot send replies: {why}"),
    }
}

/// The sending page's token, decrypted: 409 `page_not_connected` when the page has
/// no integration, or it is inactive or needs re-authentication.
pub async fn page_token(
    state: &AppState,
    c: &impl GenericClient,
    target: &Target,
) -> Result<(PageId, AccessToken), ApiError> {
    let Some(page) = &target.sending_page else {
        return Err(unusable(
            &target.page,
            "the Instagram account is not linked to a connected Facebook page",
        ));
    };
    let row = c
        .query_opt(
            "SELECT page_token_key_id, page_token_ciphertext, active, status
             FROM integrations WHERE page_id = $1",
            &[&page.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Err(unusable(page, "it is not connected (no integration)"));
    };
    let (key_id, sealed): (Option<String>, Option<Vec<u8>>) = (row.get(0), row.get(1));
    let (active, status): (bool, String) = (row.get(2), row.get(3));
    if status == "needs_reauth" {
        return Err(unusable(
            page,
            "its token was rejected by Facebook; reconnect the page",
        ));
    }
    if !active {
        return Err(unusable(page, "its integration is inactive"));
    }
    let (Some(key_id), Some(sealed)) = (key_id, sealed) else {
        return Err(unusable(page, "no page token is stored"));
    };
    let token = state
        .cipher
        .decrypt(&key_id, &sealed, page.as_str())
        .map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("decrypting a page token"))
        })?;
    Ok((page.clone(), AccessToken::from(token)))
}

/// Code 190 on a reply: the integration needs a new token, as the poller records it.
pub async fn mark_needs_reauth(
    c: &impl GenericClient,
    page: &PageId,
    subcode: Option<i64>,
) -> Result<(), tokio_postgres::Error> {
    let reason = match subcode {
        Some(sub) => format!("Send API code 190, subcode {sub}"),
        None => "Send API code 190".to_owned(),
    };
    c.execute(
        "UPDATE integrations SET status = 'needs_reauth', status_reason = $2, updated_at = now()
         WHERE page_id = $1",
        &[&page.as_str(), &reason],
    )
    .await?;
    Ok(())
}
