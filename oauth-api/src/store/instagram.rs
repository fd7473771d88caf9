//! A page's linked Instagram account (contract §8): on the integration and as the
//! account's own `pages` row.

use pagesync_schema::PageId;
use tokio_postgres::GenericClient;

/// Links the page's Instagram account (`None`: it has none now): recorded on the
/// integration, and the account's `pages` row made or updated to name the page and
/// its owner, so the projector files the account under the same user. An account
/// linked to this page before and no longer loses the link (its files stay).
pub async fn link_instagram(
    c: &impl GenericClient,
    page: &PageId,
    account: Option<&PageId>,
) -> Result<(), tokio_postgres::Error> {
    let (page, account) = (page.as_str(), account.map(PageId::as_str));
    c.execute(
        "UPDATE integrations SET instagram_account_id = $2 WHERE page_id = $1",
        &[&page, &account],
    )
    .await?;
    c.execute(
        "UPDATE pages SET linked_page_id = NULL
         WHERE linked_page_id = $1 AND page_id IS DISTINCT FROM $2",
        &[&page, &account],
    )
    .await?;
    let Some(account) = account else {
        return Ok(());
    };
    // A row that is a Messenger page (an id collision Facebook does not make) is left alone.
    c.execute(
        "INSERT INTO pages (page_id, owner_user_id, platform, linked_page_id)
         SELECT $2, owner_user_id, 'instagram', page_id FROM pages WHERE page_id = $1
         ON CONFLICT (page_id) DO UPDATE
         SET owner_user_id = EXCLUDED.owner_user_id, linked_page_id = EXCLUDED.linked_page_id
         WHERE pages.platform = 'instagram'",
        &[&page, &account],
    )
    .await?;
    Ok(())
}
