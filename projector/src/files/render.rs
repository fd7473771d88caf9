//! Rendering files from Postgres: a page's metadata, and each conversation as the
//! stored `data` of its items in (time, item id) order.

use std::collections::{BTreeMap, BTreeSet};

use pagesync_schema::canonical::canonical_json;
use pagesync_schema::{PageId, Psid};
use serde_json::Value;
use tokio_postgres::GenericClient;

use super::{FileError, Files, Folder, FolderOf, Rendered};

impl Files {
    pub(super) async fn render_whole_page(
        &self,
        client: &impl GenericClient,
        page: &PageId,
        owner: Folder,
        out: &mut Vec<Rendered>,
    ) -> Result<(), FileError> {
        let pages = BTreeSet::from([page.clone()]);
        let owner_of = |_: &PageId| owner;
        self.render_pages(client, &pages, &owner_of, out).await?;
        self.render_conversations(client, Selection::Page(page), &owner_of, out)
            .await
    }

    pub(super) async fn render_pages(
        &self,
        client: &impl GenericClient,
        pages: &BTreeSet<PageId>,
        owner_of: &FolderOf<'_>,
        out: &mut Vec<Rendered>,
    ) -> Result<(), FileError> {
        if pages.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = pages.iter().map(PageId::as_str).collect();
        let mut snapshots: BTreeMap<String, (Value, i64)> = client
            .query(
                "SELECT page_id, data, at_ms FROM page_snapshots WHERE page_id = ANY($1::text[])",
                &[&ids],
            )
            .await?
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let mut fields: BTreeMap<String, Vec<(String, Value, i64)>> = BTreeMap::new();
        for r in client
            .query(
                "SELECT page_id, field, value, at_ms FROM page_fields
                 WHERE page_id = ANY($1::text[]) ORDER BY page_id, field",
                &[&ids],
            )
            .await?
        {
            fields
                .entry(r.get(0))
                .or_default()
                .push((r.get(1), r.get(2), r.get(3)));
        }
        for page in pages {
            let snapshot = snapshots.remove(page.as_str());
            let changes = fields.remove(page.as_str()).unwrap_or_default();
            if let Some(bytes) = render_page_metadata(page, snapshot, changes) {
                let path = self
                    .page_dir(owner_of(page), page)
                    .join("page_metadata.json");
                out.push((path, bytes));
            }
        }
        Ok(())
    }

    pub(super) async fn render_conversations(
        &self,
        client: &impl GenericClient,
        which: Selection<'_>,
        owner_of: &FolderOf<'_>,
        out: &mut Vec<Rendered>,
    ) -> Result<(), FileError> {
        // Sorted here rather than by Postgres: a backlog's render is tens of
        // megabytes, which Postgres sorts on disk beyond `work_mem`, and the
        // order (bytes of the id) then does not depend on the database's collation.
        const COLUMNS: &str =
            "SELECT page_id, psid, timestamp_ms, item_id, data FROM conversation_events";
        let rows = match which {
            Selection::Conversations(convs) if convs.is_empty() => return Ok(()),
            Selection::Conversations(convs) => {
                let (p, s): (Vec<&str>, Vec<&str>) =
                    convs.iter().map(|(a, b)| (a.as_str(), b.as_str())).unzip();
                let sql = format!(
                    "{COLUMNS} WHERE in_file AND (page_id, psid) IN
                     (SELECT * FROM unnest($1::text[], $2::text[]))"
                );
                client.query(&sql, &[&p, &s]).await?
            }
            Selection::Page(page) => {
                let sql = format!("{COLUMNS} WHERE in_file AND page_id = $1");
                client.query(&sql, &[&page.as_str()]).await?
            }
        };
        // Grouped by the text of the ids, which are parsed once per conversation.
        let mut items: BTreeMap<(&str, &str), Vec<Item>> = BTreeMap::new();
        for row in &rows {
            let item = Item {
                timestamp_ms: row.try_get(2)?,
                item_id: row.try_get(3)?,
                data: row.try_get(4)?,
            };
            items
                .entry((row.try_get(0)?, row.try_get(1)?))
                .or_default()
                .push(item);
        }
        for ((page, psid), mut conversation) in items {
            let (page, psid) = (PageId::parse(page)?, Psid::parse(psid)?);
            let path = self.conversation_path(owner_of(&page), &page, &psid);
            conversation.sort_unstable_by(|a, b| {
                (a.timestamp_ms, a.item_id).cmp(&(b.timestamp_ms, b.item_id))
            });
            out.push((path, conversation_file(conversation.iter().map(|i| i.data))));
        }
        Ok(())
    }
}

/// One item of a conversation file, as stored.
struct Item<'r> {
    timestamp_ms: i64,
    item_id: &'r str,
    data: &'r str,
}

/// The file of a conversation from its items' `data` in (time, item id) order:
/// one per line, as a JSON array.
pub(super) fn conversation_file<'a>(data: impl Iterator<Item = &'a str> + Clone) -> Vec<u8> {
    let size: usize = data.clone().map(|d| d.len() + 2).sum();
    let mut bytes = Vec::with_capacity(size + 4);
    bytes.extend_from_slice(b"[\n");
    for (i, item) in data.enumerate() {
        if i > 0 {
            bytes.extend_from_slice(b",\n");
        }
        bytes.extend_from_slice(item.as_bytes());
    }
    bytes.extend_from_slice(b"\n]\n");
    bytes
}

/// Which conversations to render.
pub(super) enum Selection<'a> {
    Conversations(&'a BTreeSet<(PageId, Psid)>),
    Page(&'a PageId),
}

/// `{"data": [page]}`: the newest snapshot with newer field changes on top, keys
/// sorted so equal content gives equal bytes. `None` when nothing is known.
pub fn render_page_metadata(
    page: &PageId,
    snapshot: Option<(Value, i64)>,
    changes: Vec<(String, Value, i64)>,
) -> Option<Vec<u8>> {
    if snapshot.is_none() && changes.is_empty() {
        return None;
    }
    let (mut obj, since) = match snapshot {
        Some((Value::Object(o), at)) => (o, at),
        _ => (serde_json::Map::new(), i64::MIN),
    };
    obj.entry("id")
        .or_insert_with(|| Value::String(page.to_string()));
    for (field, value, at) in changes {
        if at > since {
            obj.insert(field, value);
        }
    }
    // Stored rows are stripped already; rows stored before tokens were stripped at
    // every depth are not, and a file must never hold one.
    let mut page = Value::Object(obj);
    pagesync_schema::tokens::strip_tokens(&mut page);
    let body = format!("{{\"data\":[{}]}}\n", canonical_json(&page));
    Some(body.into_bytes())
}
