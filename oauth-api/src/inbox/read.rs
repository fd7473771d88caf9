//! The inbox's queries. Tenancy is the page's owner (`pages.owner_user_id`, set
//! when a page is connected; an Instagram account's row has its own), as for
//! integrations: an operator sees every page.

use chrono::Utc;
use pagesync_schema::{PageId, Psid};
use tokio_postgres::GenericClient;

use super::cursor::{ListCursor, MessageCursor};
use super::items::{LISTED_COLUMNS, Listed, MESSAGE_COLUMNS, MessageItem};
use super::query::{ListQuery, PageQuery};
use crate::store::Caller;

/// One page of the list and the cursor after it (None: the last page).
pub struct ListPage {
    pub items: Vec<Listed>,
    pub next: Option<ListCursor>,
}

/// Conversations that have a message, newest activity first. Each `q` arm is a
/// subquery of its own: each uses its trigram index once and the list's walk only
/// probes their hashed results (an `ILIKE` per listed row was 4× slower,
/// docs/benchmarks.md "Inbox queries").
const LIST: &str = "
FROM conversations c JOIN pages p ON p.page_id = c.page_id
WHERE c.last_message_ms IS NOT NULL
  AND ($1::uuid IS NULL OR p.owner_user_id = $1)
  AND ($2::text IS NULL OR c.page_id = $2)
  AND ($3::text IS NULL OR c.status = $3)
  AND ($4::text IS NULL OR c.platform = $4)
  AND (NOT $5 OR c.unread_count > 0)
  AND ($6::text IS NULL
       OR (c.page_id, c.psid) IN (SELECT n.page_id, n.psid FROM conversations n
                                  WHERE n.customer_name ILIKE $6)
       OR (c.page_id, c.psid) IN (SELECT e.page_id, e.psid FROM conversation_events e
                                  WHERE e.direction IS NOT NULL AND e.text ILIKE $6)
       OR (c.page_id, c.psid) IN (SELECT x.page_id, x.psid FROM message_edits x
                                  WHERE x.text ILIKE $6))
  AND ($7::int8 IS NULL OR (c.last_message_ms, c.page_id, c.psid) < ($7, $8, $9))
ORDER BY c.last_message_ms DESC, c.page_id DESC, c.psid DESC
LIMIT $10";

pub async fn list(
    c: &impl GenericClient,
    caller: Caller,
    q: &ListQuery,
    human_agent: bool,
) -> Result<ListPage, tokio_postgres::Error> {
    let sql = format!("SELECT {LISTED_COLUMNS} {LIST}");
    let after = q.after.as_ref();
    // One row more than asked tells whether another page follows.
    let rows = c
        .query(
            &sql,
            &[
                &caller.owner_filter(),
                &q.page.as_ref().map(PageId::as_str),
                &q.status.map(|s| s.as_str()),
                &q.platform.map(|p| p.as_str()),
                &q.unread_only,
                &q.search.as_ref().map(|s| s.pattern()),
                &after.map(|a| a.last_message_ms),
                &after.map(|a| a.page.as_str()),
                &after.map(|a| a.psid.as_str()),
                &(q.limit + 1),
            ],
        )
        .await?;
    let now = Utc::now();
    let mut items: Vec<Listed> = rows
        .iter()
        .map(|r| Listed::from_row(r, now, human_agent))
        .collect();
    let more = items.len() as i64 > q.limit;
    items.truncate(q.limit as usize);
    let next = more.then(|| items.last()).flatten().map(|last| ListCursor {
        last_message_ms: last.last_message_ms,
        page: last.item.page_id.clone(),
        psid: last.item.psid.clone(),
    });
    Ok(ListPage { items, next })
}

/// Conversations by key, visible to `caller` or not (the live feed filters
/// per client); those without a message are left out, as in the list.
pub async fn by_keys(
    c: &impl GenericClient,
    caller: Caller,
    pages: &[&str],
    psids: &[&str],
    human_agent: bool,
) -> Result<Vec<Listed>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {LISTED_COLUMNS}
         FROM unnest($2::text[], $3::text[]) AS k(page_id, psid)
             JOIN conversations c ON c.page_id = k.page_id AND c.psid = k.psid
             JOIN pages p ON p.page_id = c.page_id
         WHERE c.last_message_ms IS NOT NULL
           AND ($1::uuid IS NULL OR p.owner_user_id = $1)"
    );
    let rows = c
        .query(&sql, &[&caller.owner_filter(), &pages, &psids])
        .await?;
    let now = Utc::now();
    Ok(rows
        .iter()
        .map(|r| Listed::from_row(r, now, human_agent))
        .collect())
}

/// One conversation, if `caller` may see it.
pub async fn one(
    c: &impl GenericClient,
    caller: Caller,
    page: &PageId,
    psid: &Psid,
    human_agent: bool,
) -> Result<Option<Listed>, tokio_postgres::Error> {
    let found = by_keys(c, caller, &[page.as_str()], &[psid.as_str()], human_agent).await?;
    Ok(found.into_iter().next())
}

/// The standing reactions of a message: per side, the newest reaction event (by
/// time, then id) when it is a `react` (an `unreact` removes it).
const MESSAGES: &str = "
FROM conversation_events m
LEFT JOIN receipts rc ON rc.page_id = m.page_id AND rc.psid = m.psid
LEFT JOIN LATERAL (
    SELECT count(*)::int AS n,
           (array_agg(e.text ORDER BY e.num_edit DESC NULLS LAST, e.timestamp_ms DESC,
                      e.event_id DESC) FILTER (WHERE e.text IS NOT NULL))[1] AS text
    FROM message_edits e WHERE e.mid = m.item_id
) edit ON true
LEFT JOIN LATERAL (
    SELECT array_agg(s.reaction ORDER BY s.by_page) AS names,
           array_agg(s.emoji ORDER BY s.by_page) AS emojis,
           array_agg(s.by_page ORDER BY s.by_page) AS by_page
    FROM (SELECT DISTINCT ON (r.by_page) r.by_page, r.action, r.reaction, r.emoji
          FROM reactions r WHERE r.mid = m.item_id
          ORDER BY r.by_page, r.timestamp_ms DESC, r.event_id DESC) s
    WHERE s.action = 'react'
) reactions ON true
WHERE m.page_id = $1 AND m.psid = $2 AND m.in_file AND m.direction IS NOT NULL
  AND ($3::int8 IS NULL OR (m.timestamp_ms, m.item_id) > ($3, $4))
ORDER BY m.timestamp_ms, m.item_id
LIMIT $5";

/// A page of a conversation's messages, oldest first, and the cursor after it.
pub async fn messages(
    c: &impl GenericClient,
    page: &PageId,
    psid: &Psid,
    q: &PageQuery,
) -> Result<(Vec<MessageItem>, Option<MessageCursor>), tokio_postgres::Error> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} {MESSAGES}");
    let after = q.after.as_ref();
    let rows = c
        .query(
            &sql,
            &[
                &page.as_str(),
                &psid.as_str(),
                &after.map(|a| a.timestamp_ms),
                &after.map(|a| a.mid.as_str()),
                &(q.limit + 1),
            ],
        )
        .await?;
    let more = rows.len() as i64 > q.limit;
    let mut items: Vec<MessageItem> = rows.iter().map(MessageItem::from_row).collect();
    items.truncate(q.limit as usize);
    let next = more.then(|| items.last()).flatten().map(|m| MessageCursor {
        timestamp_ms: m.timestamp.timestamp_millis(),
        mid: m.mid.clone(),
    });
    Ok((items, next))
}
