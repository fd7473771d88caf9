//! The files under `DATA_DIR` (contract §4), rendered from Postgres so they are a
//! pure function of the applied events, and replaced atomically.
//!
//! Ownership: a page's folder is `users/<owner>/facebook/<page>/` when
//! `pages.owner_user_id` is set, else `facebook/<page>/`; an Instagram account's
//! (`pages.platform = 'instagram'`) is `instagram/<account>/` in the same places. `page_file_locations`
//! remembers where the files were last written; whenever a page's files are
//! written, and every `PROJECTOR_OWNER_CHECK_INTERVAL`, a page whose owner differs
//! from its location is rewritten in full at the new place and the old folder removed.

mod cache;
mod disk;
mod location;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pagesync_schema::{PageId, Platform, Psid};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use cache::ItemCache;
pub use disk::replace_atomically;
use disk::{remove_if_present, write_all};
use location::{Location, locations, record_locations};
use render::Selection;
pub use render::render_page_metadata;

use crate::parsed;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading what to render from Postgres")]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("file writer stopped")]
    Join(#[from] tokio::task::JoinError),
    #[error("a stored id does not parse")]
    Id(#[from] pagesync_schema::IdError),
    #[error("Postgres answered inconsistently: {0}")]
    Inconsistent(&'static str),
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
    /// The items of the conversations written lately (shared by the clones).
    cache: Arc<ItemCache>,
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
        Self {
            root: root.into(),
            cache: Arc::new(ItemCache::new(cache::CACHE_BYTES)),
        }
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
        let plan = Plan::new(&locations, pages, conversations);
        let owner_of = |p: &PageId| {
            locations
                .get(p)
                .map_or_else(Folder::default, Location::folder)
        };
        let mut out = Vec::new();
        let emptied = self
            .render_in_place(client, &plan, &owner_of, &mut out)
            .await?;
        for page in &plan.moved {
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
        let old_folders = self.old_folders(&plan.moved, &locations);
        remove_all(emptied, old_folders).await?;
        record_locations(client, &locations).await?;
        Ok(files)
    }

    /// Renders the page files and conversations that stay where they are; returns
    /// the conversation files to remove: a conversation left without items (its only
    /// message moved to another conversation by a better copy) has no file.
    async fn render_in_place(
        &self,
        client: &impl GenericClient,
        plan: &Plan,
        owner_of: &FolderOf<'_>,
        out: &mut Vec<Rendered>,
    ) -> Result<Vec<PathBuf>, FileError> {
        self.render_pages(client, &plan.pages, owner_of, out)
            .await?;
        let entries = self.cache.load(client, &plan.conversations).await?;
        let mut emptied = Vec::new();
        for (page, psid) in &plan.conversations {
            let path = self.conversation_path(owner_of(page), page, psid);
            match entries
                .get(&(page.clone(), psid.clone()))
                .and_then(|e| e.file())
            {
                Some(bytes) => out.push((path, bytes)),
                None => emptied.push(path),
            }
        }
        self.cache.keep(entries);
        Ok(emptied)
    }

    /// The folders that moved pages' files were written to before.
    fn old_folders(
        &self,
        moved: &BTreeSet<PageId>,
        locations: &BTreeMap<PageId, Location>,
    ) -> Vec<PathBuf> {
        moved
            .iter()
            .map(|page| {
                let loc = &locations[page];
                tracing::info!(page_id = %page, "page owner changed; files moved");
                let old = Folder {
                    owner: loc.files_owner,
                    platform: loc.platform,
                };
                self.page_dir(old, page)
            })
            .collect()
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
        let pages = rows
            .iter()
            .map(|r| parsed::get(r, 0))
            .collect::<Result<BTreeSet<PageId>, _>>()?;
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
        let pages = rows
            .iter()
            .map(|r| parsed::get(r, 0))
            .collect::<Result<BTreeSet<PageId>, _>>()?;
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
        let conversations = rows
            .iter()
            .map(|r| -> Result<(PageId, Psid), tokio_postgres::Error> {
                Ok((parsed::get(r, 0)?, parsed::get(r, 1)?))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in conversations.chunks(REWRITE_CHUNK) {
            let chunk: BTreeSet<(PageId, Psid)> = chunk.iter().cloned().collect();
            let mut out = Vec::new();
            self.render_conversations(
                client,
                Selection::Conversations(&chunk),
                &owner_of,
                &mut out,
            )
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
            bases.extend(user_folders(&root)?);
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
}

/// What one write renders: pages whose owner changed are rendered whole at
/// their new place; the rest of what the batches touched is rendered where it is.
struct Plan {
    moved: BTreeSet<PageId>,
    pages: BTreeSet<PageId>,
    conversations: BTreeSet<(PageId, Psid)>,
}

impl Plan {
    fn new(
        locations: &BTreeMap<PageId, Location>,
        pages: &BTreeSet<PageId>,
        conversations: &BTreeSet<(PageId, Psid)>,
    ) -> Self {
        let moved: BTreeSet<PageId> = locations
            .iter()
            .filter(|(_, loc)| loc.written && loc.owner != loc.files_owner)
            .map(|(page, _)| page.clone())
            .collect();
        Self {
            pages: pages.difference(&moved).cloned().collect(),
            conversations: conversations
                .iter()
                .filter(|(p, _)| !moved.contains(p))
                .cloned()
                .collect(),
            moved,
        }
    }
}

/// The folders of each owner under `root/users` (none when it does not exist).
fn user_folders(root: &Path) -> Result<Vec<PathBuf>, FileError> {
    let users = root.join("users");
    let io = |source| FileError::Io {
        path: users.clone(),
        source,
    };
    match std::fs::read_dir(&users) {
        Ok(entries) => entries
            .map(|entry| entry.map(|e| e.path()).map_err(io))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(e)),
    }
}

/// Removes the emptied conversation files and the moved pages' old folders.
async fn remove_all(emptied: Vec<PathBuf>, folders: Vec<PathBuf>) -> Result<(), FileError> {
    tokio::task::spawn_blocking(move || {
        for path in emptied {
            remove_if_present(&path, |p| std::fs::remove_file(p))?;
        }
        for dir in folders {
            remove_if_present(&dir, |p| std::fs::remove_dir_all(p))?;
        }
        Ok::<(), FileError>(())
    })
    .await?
}

#[cfg(test)]
mod tests;
