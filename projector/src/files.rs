//! The files under `DATA_DIR` (contract §4), rendered from Postgres so they are a
//! pure function of the applied events, and replaced atomically.
//!
//! Ownership: a page's folder is `users/<owner>/facebook/<page>/` when
//! `pages.owner_user_id` is set, else `facebook/<page>/`; an Instagram account's
//! (`pages.platform = 'instagram'`) is `instagram/<account>/` in the same places. `page_file_locations`
//! remembers where the files were last written; whenever a page's files are
//! written, and every `PROJECTOR_OWNER_CHECK_INTERVAL`, a page whose owner differs
//! from its location is rewritten in full at the new place and the old folder removed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use pagesync_schema::canonical::canonical_json;
use pagesync_schema::{PageId, Platform, Psid};
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("database error while rendering files: {}", pagesync_runtime::connect::db_error_text(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("file writer stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Takes the advisory lock held while files are rendered and written (key
/// 0x7061_6765_6669_6c65, "pagefile"). A simple query: no statement to prepare.
const LOCK_FILES: &str = "SELECT pg_advisory_xact_lock(8097867290196405349)";

/// Conversations rendered at once when every file is written (after a rebuild).
const REWRITE_CHUNK: usize = 1000;

/// Writes the projection's files under one root.
#[derive(Clone, Debug)]
pub struct Files {
    root: PathBuf,
}

/// One file to write: its path and bytes.
type Rendered = (PathBuf, Vec<u8>);

/// Where an account's folder is: its owner (if any) and its platform's folder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Folder {
    pub owner: Option<Uuid>,
    pub platform: Platform,
}

/// The folder of each page, as `locations` read it.
type FolderOf<'a> = dyn Fn(&PageId) -> Folder + Sync + 'a;

impl Files {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a page's (or Instagram account's) files. Only validated ids
    /// and a uuid form the path.
    pub fn page_dir(&self, folder: Folder, page: &PageId) -> PathBuf {
        let base = match folder.owner {
            Some(user) => self.root.join("users").join(user.to_string()),
            None => self.root.clone(),
        };
        base.join(folder.platform.data_folder()).join(page.as_str())
    }

    /// The file of one conversation.
    fn conversation_path(&self, folder: Folder, page: &PageId, psid: &Psid) -> PathBuf {
        self.page_dir(folder, page)
            .join("conversations")
            .join(format!("{}.json", psid.as_str()))
    }

    /// Rewrites the files of the given pages and conversations, moving pages whose
    /// owner changed; returns how many files were written.
    ///
    /// Rendering and writing happen under a lock that every projector instance
    /// takes: with two instances (a rolling deploy), one that rendered before the
    /// other's commit could otherwise write its older file last.
    pub async fn write(
        &self,
        client: &mut tokio_postgres::Client,
        pages: &BTreeSet<PageId>,
        conversations: &BTreeSet<(PageId, Psid)>,
    ) -> Result<usize, FileError> {
        if pages.is_empty() && conversations.is_empty() {
            return Ok(0);
        }
        let tx = client.transaction().await?;
        let written = self.write_locked(&tx, pages, conversations).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// `write` inside its transaction; the first statement takes the files lock.
    async fn write_locked(
        &self,
        client: &impl GenericClient,
        pages: &BTreeSet<PageId>,
        conversations: &BTreeSet<(PageId, Psid)>,
    ) -> Result<usize, FileError> {
        let mut all_pages: BTreeSet<PageId> = pages.clone();
        all_pages.extend(conversations.iter().map(|(p, _)| p.clone()));
        if all_pages.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        // The lock is sent with the first query: one round trip for both.
        let (locked, locations) = futures::join!(
            client.batch_execute(LOCK_FILES),
            locations(client, &all_pages)
        );
        locked?;
        let locations = locations?;
        let mut moved = BTreeSet::new();
        for (page, loc) in &locations {
            if loc.written && loc.owner != loc.files_owner {
                moved.insert(page.clone());
            }
        }
        let mut out = Vec::new();
        let meta_pages: BTreeSet<PageId> = pages
            .iter()
            .filter(|p| !moved.contains(*p))
            .cloned()
            .collect();
        let convs: BTreeSet<(PageId, Psid)> = conversations
            .iter()
            .filter(|(p, _)| !moved.contains(p))
            .cloned()
            .collect();
        let owner_of = |p: &PageId| {
            locations
                .get(p)
                .map_or_else(Folder::default, Location::folder)
        };
        self.render_pages(client, &meta_pages, &owner_of, &mut out)
            .await?;
        let before = out.len();
        self.render_conversations(client, Selection::Some(&convs), &owner_of, &mut out)
            .await?;
        // A conversation left without items (its only message moved to another
        // conversation by a better copy) has no file.
        let rendered: BTreeSet<&PathBuf> = out[before..].iter().map(|(path, _)| path).collect();
        let emptied: Vec<PathBuf> = convs
            .iter()
            .map(|(page, psid)| self.conversation_path(owner_of(page), page, psid))
            .filter(|path| !rendered.contains(path))
            .collect();
        for page in &moved {
            self.render_whole_page(client, page, owner_of(page), &mut out)
                .await?;
        }
        let rendered = started.elapsed();
        let files = out.len();
        write_all(out).await?;
        tracing::debug!(
            files,
            render_ms = rendered.as_millis() as u64,
            write_ms = (started.elapsed() - rendered).as_millis() as u64,
            "files written"
        );
        let mut removed = Vec::new();
        for page in &moved {
            let loc = &locations[page];
            let old = self.page_dir(
                Folder {
                    owner: loc.files_owner,
                    platform: loc.platform,
                },
                page,
            );
            removed.push(old);
            tracing::info!(page_id = %page, "page owner changed; files moved");
        }
        tokio::task::spawn_blocking(move || {
            for path in emptied {
                remove_if_present(&path, |p| std::fs::remove_file(p))?;
            }
            for dir in removed {
                remove_if_present(&dir, |p| std::fs::remove_dir_all(p))?;
            }
            Ok::<(), FileError>(())
        })
        .await??;
        record_locations(client, &locations).await?;
        Ok(files)
    }

    /// Moves the files of every page whose owner changed since they were written.
    pub async fn relocate_moved(
        &self,
        client: &mut tokio_postgres::Client,
    ) -> Result<usize, FileError> {
        let rows = client
            .query(
                "SELECT l.page_id FROM page_file_locations l JOIN pages p USING (page_id)
                 WHERE p.owner_user_id IS DISTINCT FROM l.owner_user_id",
                &[],
            )
            .await?;
        let pages: BTreeSet<PageId> = rows
            .iter()
            .filter_map(|r| PageId::parse(r.get::<_, String>(0)).ok())
            .collect();
        if !pages.is_empty() {
            self.write(client, &pages, &BTreeSet::new()).await?;
        }
        Ok(pages.len())
    }

    /// Writes every file of the projection (after a rebuild).
    pub async fn write_everything(
        &self,
        client: &mut tokio_postgres::Client,
    ) -> Result<(), FileError> {
        let tx = client.transaction().await?;
        // Rendering the whole projection takes as long as it is large, and the files
        // are written between its queries: the pool's server-side deadlines
        // (DATABASE_STATEMENT_TIMEOUT) are lifted for this one transaction. The
        // client still gives up a server that owes a reply and stays silent.
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = 0; \
             SET LOCAL idle_in_transaction_session_timeout = 0; {LOCK_FILES}"
        ))
        .await?;
        self.write_everything_locked(&tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_everything_locked(&self, client: &impl GenericClient) -> Result<(), FileError> {
        let rows = client.query("SELECT page_id FROM pages", &[]).await?;
        let pages: BTreeSet<PageId> = rows
            .iter()
            .filter_map(|r| PageId::parse(r.get::<_, String>(0)).ok())
            .collect();
        let locations = locations(client, &pages).await?;
        let owner_of = |p: &PageId| {
            locations
                .get(p)
                .map_or_else(Folder::default, Location::folder)
        };
        let mut out = Vec::new();
        self.render_pages(client, &pages, &owner_of, &mut out)
            .await?;
        write_all(out).await?;
        // A chunk of conversations at a time: memory is bounded by the chunk, not by
        // the whole projection (a million events render to some 200 MB).
        let rows = client
            .query(
                "SELECT page_id, psid FROM conversations ORDER BY page_id, psid",
                &[],
            )
            .await?;
        let conversations: Vec<(PageId, Psid)> = rows
            .iter()
            .filter_map(|r| {
                let page = PageId::parse(r.get::<_, String>(0)).ok()?;
                Some((page, Psid::parse(r.get::<_, String>(1)).ok()?))
            })
            .collect();
        for chunk in conversations.chunks(REWRITE_CHUNK) {
            let chunk: BTreeSet<(PageId, Psid)> = chunk.iter().cloned().collect();
            let mut out = Vec::new();
            self.render_conversations(client, Selection::Some(&chunk), &owner_of, &mut out)
                .await?;
            write_all(out).await?;
        }
        record_locations(client, &locations).await?;
        Ok(())
    }

    /// Removes every file the projector writes (for a rebuild).
    pub async fn remove_everything(&self) -> Result<(), FileError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut bases = vec![root.clone()];
            if let Ok(users) = std::fs::read_dir(root.join("users")) {
                bases.extend(users.flatten().map(|u| u.path()));
            }
            let dirs = bases
                .iter()
                .flat_map(|base| Platform::ALL.map(|platform| base.join(platform.data_folder())));
            for dir in dirs {
                remove_if_present(&dir, |p| std::fs::remove_dir_all(p))?;
            }
            Ok(())
        })
        .await?
    }

    async fn render_whole_page(
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

    async fn render_pages(
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

    async fn render_conversations(
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
            Selection::Some(convs) if convs.is_empty() => return Ok(()),
            Selection::Some(convs) => {
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
        // (page, psid) -> (timestamp, item id, data) of each item.
        type Items<'r> = BTreeMap<(&'r str, &'r str), Vec<(i64, &'r str, &'r str)>>;
        let mut items: Items = BTreeMap::new();
        for row in &rows {
            items.entry((row.get(0), row.get(1))).or_default().push((
                row.get(2),
                row.get(3),
                row.get(4),
            ));
        }
        for ((page, psid), mut conversation) in items {
            let (Ok(page), Ok(psid)) = (PageId::parse(page), Psid::parse(psid)) else {
                continue;
            };
            conversation.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            let size: usize = conversation.iter().map(|(_, _, d)| d.len() + 2).sum();
            let mut bytes = Vec::with_capacity(size + 4);
            bytes.extend_from_slice(b"[\n");
            for (i, (_, _, data)) in conversation.iter().enumerate() {
                if i > 0 {
                    bytes.extend_from_slice(b",\n");
                }
                bytes.extend_from_slice(data.as_bytes());
            }
            bytes.extend_from_slice(b"\n]\n");
            out.push((self.conversation_path(owner_of(&page), &page, &psid), bytes));
        }
        Ok(())
    }
}

enum Selection<'a> {
    Some(&'a BTreeSet<(PageId, Psid)>),
    Page(&'a PageId),
}

struct Location {
    owner: Option<Uuid>,
    platform: Platform,
    written: bool,
    files_owner: Option<Uuid>,
}

impl Location {
    fn folder(&self) -> Folder {
        Folder {
            owner: self.owner,
            platform: self.platform,
        }
    }
}

async fn locations(
    client: &impl GenericClient,
    pages: &BTreeSet<PageId>,
) -> Result<BTreeMap<PageId, Location>, tokio_postgres::Error> {
    let ids: Vec<&str> = pages.iter().map(PageId::as_str).collect();
    let rows = client
        .query(
            "SELECT p.page_id, p.owner_user_id, l.page_id IS NOT NULL, l.owner_user_id, p.platform
             FROM pages p LEFT JOIN page_file_locations l USING (page_id)
             WHERE p.page_id = ANY($1::text[])",
            &[&ids],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let page = PageId::parse(r.get::<_, String>(0)).ok()?;
            // The column's CHECK allows only the two platforms.
            let platform = r.get::<_, &str>(4).parse().ok()?;
            Some((
                page,
                Location {
                    owner: r.get(1),
                    platform,
                    written: r.get(2),
                    files_owner: r.get(3),
                },
            ))
        })
        .collect())
}

async fn record_locations(
    client: &impl GenericClient,
    locations: &BTreeMap<PageId, Location>,
) -> Result<(), tokio_postgres::Error> {
    let changed: Vec<(&str, Option<Uuid>)> = locations
        .iter()
        .filter(|(_, l)| !l.written || l.owner != l.files_owner)
        .map(|(p, l)| (p.as_str(), l.owner))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let (pages, owners): (Vec<&str>, Vec<Option<Uuid>>) = changed.into_iter().unzip();
    client
        .execute(
            "INSERT INTO page_file_locations (page_id, owner_user_id)
             SELECT * FROM unnest($1::text[], $2::uuid[])
             ON CONFLICT (page_id) DO UPDATE SET owner_user_id = EXCLUDED.owner_user_id",
            &[&pages, &owners],
        )
        .await?;
    Ok(())
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

async fn write_all(mut files: Vec<Rendered>) -> Result<(), FileError> {
    // Writing is bound by file system calls; spread it over the cores.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = files.len().div_ceil(workers).max(64);
    let mut tasks = Vec::new();
    while !files.is_empty() {
        let rest = files.split_off(per.min(files.len()));
        let chunk = std::mem::replace(&mut files, rest);
        tasks.push(tokio::task::spawn_blocking(move || write_chunk(chunk)));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

fn write_chunk(files: Vec<Rendered>) -> Result<(), FileError> {
    let mut made: BTreeSet<PathBuf> = BTreeSet::new();
    for (path, bytes) in files {
        if let Some(dir) = path.parent()
            && !made.contains(dir)
        {
            std::fs::create_dir_all(dir).map_err(|source| FileError::Io {
                path: dir.to_owned(),
                source,
            })?;
            made.insert(dir.to_owned());
        }
        replace_atomically(&path, &bytes).map_err(|source| FileError::Io { path, source })?;
    }
    Ok(())
}

/// Removes a file or folder with `remove`; one already gone is not an error.
fn remove_if_present(
    path: &Path,
    remove: fn(&Path) -> std::io::Result<()>,
) -> Result<(), FileError> {
    match remove(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FileError::Io {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Writes a temporary file in the same folder, then renames it over `path`.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn newer_field_changes_override_the_snapshot_and_older_ones_do_not() {
        let page = PageId::parse("p1").unwrap();
        let bytes = render_page_metadata(
            &page,
            Some((json!({"id": "p1", "name": "Old", "about": "a"}), 100)),
            vec![
                ("about".into(), json!("stale"), 50),
                ("name".into(), json!("New"), 200),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "{\"data\":[{\"about\":\"a\",\"id\":\"p1\",\"name\":\"New\"}]}\n"
        );
        assert!(render_page_metadata(&page, None, vec![]).is_none());
    }

    #[test]
    fn a_rendered_page_never_holds_a_token_whatever_the_stored_rows_hold() {
        let page = PageId::parse("p1").unwrap();
        let bytes = render_page_metadata(
            &page,
            Some((
                json!({"id": "p1", "access_token": "EAAB1", "page": {"access_token": "EAAB2"}}),
                1,
            )),
            vec![(
                "about".into(),
                json!({"page_token": "EAAB3", "text": "a"}),
                2,
            )],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "{\"data\":[{\"about\":{\"text\":\"a\"},\"id\":\"p1\",\"page\":{}}]}\n"
        );
    }

    #[test]
    fn page_folders_depend_on_the_owner_and_the_platform() {
        let files = Files::new("/d");
        let page = PageId::parse("p1").unwrap();
        let folder = |owner, platform| Folder { owner, platform };
        let dir = |owner, platform| files.page_dir(folder(owner, platform), &page);
        assert_eq!(
            dir(None, Platform::Messenger),
            PathBuf::from("/d/facebook/p1")
        );
        assert_eq!(
            dir(None, Platform::Instagram),
            PathBuf::from("/d/instagram/p1")
        );
        let u = Uuid::nil();
        assert_eq!(
            dir(Some(u), Platform::Messenger),
            PathBuf::from(format!("/d/users/{u}/facebook/p1"))
        );
        assert_eq!(
            dir(Some(u), Platform::Instagram),
            PathBuf::from(format!("/d/users/{u}/instagram/p1"))
        );
    }

    #[test]
    fn the_files_lock_key_is_pagefile() {
        assert_eq!(
            LOCK_FILES,
            format!(
                "SELECT pg_advisory_xact_lock({})",
                i64::from_be_bytes(*b"pagefile")
            )
        );
    }

    #[test]
    fn atomic_replace_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        replace_atomically(&path, b"1").unwrap();
        replace_atomically(&path, b"2").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"2");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
