//! The stored items of the conversations written lately, so that rewriting a
//! conversation file asks Postgres only for the items written since (each item
//! write takes the next `conversation_item_version`, V12) and the file is a
//! concatenation: the cost of a new message no longer grows with the query and
//! the transfer of every item of its conversation. The file stays a pure function
//! of the stored rows: a conversation that lost an item, or was created again,
//! has a newer `items_reset` and is read whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use pagesync_schema::{PageId, Psid};
use tokio_postgres::GenericClient;

use super::FileError;
use super::render::conversation_file;

/// Bytes of item data (and ids) kept at most; the conversations used longest ago go first.
pub const CACHE_BYTES: usize = 256 << 20;

/// Bookkeeping counted per item beside its id and data.
const ITEM_OVERHEAD: usize = 96;

type Key = (PageId, Psid);

/// The cache of one `Files`.
pub(super) struct ItemCache {
    limit: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    bytes: usize,
    clock: u64,
}

/// One conversation's items in the file's order, and the newest version read.
#[derive(Default)]
pub(super) struct Entry {
    version: i64,
    /// (time, item id) → data, as stored.
    items: BTreeMap<(i64, String), String>,
    /// item id → time, to replace an item whose time changed.
    times: HashMap<String, i64>,
    bytes: usize,
    used: u64,
}

impl Entry {
    fn put(&mut self, ts: i64, item_id: String, data: String, version: i64) {
        self.version = self.version.max(version);
        if let Some(old_ts) = self.times.insert(item_id.clone(), ts)
            && let Some(old) = self.items.remove(&(old_ts, item_id.clone()))
        {
            self.bytes -= cost(&item_id, &old);
        }
        self.bytes += cost(&item_id, &data);
        self.items.insert((ts, item_id), data);
    }

    /// The conversation's file; `None` when it has no item in the file.
    pub fn file(&self) -> Option<Vec<u8>> {
        (!self.items.is_empty()).then(|| conversation_file(self.items.values().map(String::as_str)))
    }
}

fn cost(item_id: &str, data: &str) -> usize {
    2 * item_id.len() + data.len() + ITEM_OVERHEAD
}

impl std::fmt::Debug for ItemCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().expect("item cache");
        f.debug_struct("ItemCache")
            .field("conversations", &inner.entries.len())
            .field("bytes", &inner.bytes)
            .finish()
    }
}

impl ItemCache {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            inner: Mutex::default(),
        }
    }

    /// The current items of `convs`, from the cache brought up to date where it
    /// holds them, else read whole. Conversations without a row or an item in
    /// the file are absent from the answer.
    pub async fn load(
        &self,
        client: &impl GenericClient,
        convs: &BTreeSet<Key>,
    ) -> Result<BTreeMap<Key, Entry>, FileError> {
        let mut cached = self.take(convs);
        let stale = refresh(client, &mut cached).await?;
        let missing: Vec<&Key> = convs
            .iter()
            .filter(|k| !cached.contains_key(*k) || stale.contains(*k))
            .collect();
        for key in &stale {
            cached.remove(key);
        }
        cached.append(&mut read_whole(client, &missing).await?);
        Ok(cached)
    }

    /// Takes the entries of `convs` out while they are brought up to date (a
    /// failure on the way leaves them out: read whole next time).
    fn take(&self, convs: &BTreeSet<Key>) -> BTreeMap<Key, Entry> {
        let mut inner = self.inner.lock().expect("item cache");
        let mut out = BTreeMap::new();
        for key in convs {
            if let Some(entry) = inner.entries.remove(key) {
                inner.bytes -= entry.bytes;
                out.insert(key.clone(), entry);
            }
        }
        out
    }

    /// Keeps the entries for the next rewrite, dropping the ones used longest ago
    /// beyond the limit.
    pub fn keep(&self, entries: BTreeMap<Key, Entry>) {
        let mut inner = self.inner.lock().expect("item cache");
        inner.clock += 1;
        let now = inner.clock;
        for (key, mut entry) in entries {
            if entry.bytes > self.limit / 4 {
                continue;
            }
            entry.used = now;
            inner.bytes += entry.bytes;
            if let Some(old) = inner.entries.insert(key, entry) {
                inner.bytes -= old.bytes;
            }
        }
        if inner.bytes > self.limit {
            inner.evict(self.limit);
        }
    }
}

impl Inner {
    fn evict(&mut self, limit: usize) {
        let mut by_age: Vec<(u64, Key)> = self
            .entries
            .iter()
            .map(|(k, e)| (e.used, k.clone()))
            .collect();
        by_age.sort_unstable();
        for (_, key) in by_age {
            if self.bytes <= limit * 3 / 4 {
                break;
            }
            if let Some(e) = self.entries.remove(&key) {
                self.bytes -= e.bytes;
            }
        }
    }
}

/// Reads the items of the cached conversations written since their version;
/// returns the conversations to read whole instead (reset since, or gone).
async fn refresh(
    client: &impl GenericClient,
    cached: &mut BTreeMap<Key, Entry>,
) -> Result<BTreeSet<Key>, FileError> {
    if cached.is_empty() {
        return Ok(BTreeSet::new());
    }
    let keys: Vec<Key> = cached.keys().cloned().collect();
    let pages: Vec<&str> = keys.iter().map(|(p, _)| p.as_str()).collect();
    let psids: Vec<&str> = keys.iter().map(|(_, s)| s.as_str()).collect();
    let since: Vec<i64> = cached.values().map(|e| e.version).collect();
    let rows = client
        .query(CHANGED_ITEMS, &[&pages, &psids, &since])
        .await?;
    let mut stale = BTreeSet::new();
    for r in &rows {
        let key = &keys[position(r.try_get(0)?, keys.len())?];
        let reset: Option<i64> = r.try_get(1)?;
        let entry = cached
            .get_mut(key)
            .ok_or(FileError::Inconsistent("a conversation not asked for"))?;
        if reset.is_none_or(|reset| reset > entry.version) {
            stale.insert(key.clone());
            continue;
        }
        if let Some(item_id) = r.try_get::<_, Option<String>>(3)? {
            let version = r.try_get::<_, Option<i64>>(4)?.unwrap_or(0);
            entry.put(r.try_get(2)?, item_id, r.try_get(5)?, version);
        }
    }
    Ok(stale)
}

/// Every item in the file of `convs`, with each conversation's version.
async fn read_whole(
    client: &impl GenericClient,
    convs: &[&Key],
) -> Result<BTreeMap<Key, Entry>, FileError> {
    let mut out = BTreeMap::new();
    if convs.is_empty() {
        return Ok(out);
    }
    let pages: Vec<&str> = convs.iter().map(|(p, _)| p.as_str()).collect();
    let psids: Vec<&str> = convs.iter().map(|(_, s)| s.as_str()).collect();
    let rows = client.query(ALL_ITEMS, &[&pages, &psids]).await?;
    for r in &rows {
        let key = convs[position(r.try_get(0)?, convs.len())?];
        let entry: &mut Entry = out.entry(key.clone()).or_default();
        let reset: Option<i64> = r.try_get(1)?;
        entry.version = entry.version.max(reset.unwrap_or(0));
        if let Some(item_id) = r.try_get::<_, Option<String>>(3)? {
            let version = r.try_get::<_, Option<i64>>(4)?.unwrap_or(0);
            entry.put(r.try_get(2)?, item_id, r.try_get(5)?, version);
        }
    }
    Ok(out)
}

/// The index a query's `WITH ORDINALITY` column (1-based) names.
fn position(ordinality: i64, len: usize) -> Result<usize, FileError> {
    usize::try_from(ordinality - 1)
        .ok()
        .filter(|i| *i < len)
        .ok_or(FileError::Inconsistent(
            "an ordinality beyond the conversations asked for",
        ))
}

/// The items written since each conversation's version (`$3`), with the
/// conversation's reset (NULL when its row is gone).
const CHANGED_ITEMS: &str = "
SELECT k.i, CASE WHEN c.page_id IS NOT NULL THEN coalesce(c.items_reset, 0) END,
       e.timestamp_ms, e.item_id, e.item_version, e.data
FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY AS k(page_id, psid, since, i)
LEFT JOIN conversations c ON c.page_id = k.page_id AND c.psid = k.psid
LEFT JOIN conversation_events e
    ON e.page_id = k.page_id AND e.psid = k.psid AND e.in_file AND e.item_version > k.since";

/// Every item in the file of each conversation, with its reset.
const ALL_ITEMS: &str = "
SELECT k.i, c.items_reset, e.timestamp_ms, e.item_id, e.item_version, e.data
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(page_id, psid, i)
JOIN conversations c ON c.page_id = k.page_id AND c.psid = k.psid
LEFT JOIN conversation_events e
    ON e.page_id = k.page_id AND e.psid = k.psid AND e.in_file";
