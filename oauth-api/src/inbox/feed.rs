//! The live feed behind `GET /api/events`: ONE `LISTEN` connection per process
//! tails `conversation_changes` (written by the projector in each batch's
//! transaction) and fans the changed conversations out to every client through a
//! broadcast channel, so idle clients cost a channel slot, not a query.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::Event;
use deadpool_postgres::Pool;
use pagesync_runtime::CancellationToken;
use tokio::sync::{Notify, broadcast};
use tokio_postgres::{AsyncMessage, GenericClient, NoTls};

use super::items::Listed;
use super::read;
use crate::store::Caller;

/// Must match the projector's `pagesync_projector::batch::CHANGES_CHANNEL`.
const CHANNEL: &str = "pagesync_conversation_changes";
/// Changes held for slow clients; one that falls further behind reads the table.
const CAPACITY: usize = 1024;
/// Rows read from the table at a time.
const TAIL_BATCH: i64 = 1000;
/// A tail even without a notification, in case one was lost with a connection.
const SAFETY_TAIL: Duration = Duration::from_secs(30);
/// Wait before reconnecting after the listening connection failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// A conversation that changed, as its list item, with the change's id.
#[derive(Debug)]
pub struct Change {
    pub id: i64,
    pub listed: Listed,
    /// The SSE event, serialised once here: every connected client sends a copy,
    /// so the JSON is not rebuilt per client (docs/benchmarks.md, "Live updates").
    pub event: Event,
}

impl Change {
    /// None (logged) when the item does not serialise, which would be a bug.
    fn new(id: i64, listed: Listed) -> Option<Self> {
        let event = Event::default()
            .event("conversation")
            .id(id.to_string())
            .json_data(&listed.item);
        match event {
            Ok(event) => Some(Self { id, listed, event }),
            Err(e) => {
                tracing::error!(error = %e, change = id, "a conversation item did not serialise");
                None
            }
        }
    }

    pub fn visible_to(&self, caller: Caller) -> bool {
        match caller {
            Caller::Operator => true,
            Caller::User(u) => self.listed.owner == Some(u),
        }
    }
}

/// The handle clients subscribe through; `stop` ends every stream at shutdown.
#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<Change>>,
    pub stop: CancellationToken,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            stop: CancellationToken::new(),
        }
    }
}

impl Feed {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }
}

/// Reads the changes after `after` visible to `caller`, one per conversation
/// (its newest), in change order.
pub async fn changes_after(
    c: &impl GenericClient,
    caller: Caller,
    after: i64,
    human_agent: bool,
) -> Result<Vec<Change>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT max(id), page_id, psid FROM conversation_changes WHERE id > $1
             GROUP BY page_id, psid ORDER BY max(id) LIMIT $2",
            &[&after, &(TAIL_BATCH * 10)],
        )
        .await?;
    let keys: Vec<(i64, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    items_of(c, caller, keys, human_agent).await
}

/// The list items of changed conversations, in the order of `keys`.
async fn items_of(
    c: &impl GenericClient,
    caller: Caller,
    keys: Vec<(i64, String, String)>,
    human_agent: bool,
) -> Result<Vec<Change>, tokio_postgres::Error> {
    let pages: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let psids: Vec<&str> = keys.iter().map(|k| k.2.as_str()).collect();
    let mut found: BTreeMap<(String, String), Listed> =
        read::by_keys(c, caller, &pages, &psids, human_agent)
            .await?
            .into_iter()
            .map(|l| ((l.item.page_id.clone(), l.item.psid.clone()), l))
            .collect();
    Ok(keys
        .into_iter()
        .filter_map(|(id, page, psid)| {
            let listed = found.remove(&(page, psid))?;
            Change::new(id, listed)
        })
        .collect())
}

/// The task holding the `LISTEN` connection.
pub struct Listener {
    pub feed: Feed,
    pub pool: Pool,
    pub database_url: tokio_postgres::Config,
    pub human_agent: bool,
}

impl Listener {
    /// Listens, reconnecting after failures, until `stop` is cancelled. Every
    /// step races `stop`: a database that went silent never holds up shutdown.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        let mut last = loop {
            let newest = tokio::select! {
                _ = stop.cancelled() => return,
                newest = self.newest_id() => newest,
            };
            match newest {
                Ok(id) => break id,
                Err(e) => tracing::warn!(error = %e, "live feed cannot read the change table"),
            }
            if sleep_or_stop(&stop, RECONNECT_AFTER).await {
                return;
            }
        };
        loop {
            let session = tokio::select! {
                _ = stop.cancelled() => return,
                session = self.listen(&mut last) => session,
            };
            if let Err(e) = session {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "live feed connection failed; reconnecting"
                );
            }
            if sleep_or_stop(&stop, RECONNECT_AFTER).await {
                return;
            }
        }
    }

    async fn newest_id(&self) -> Result<i64, anyhow::Error> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one("SELECT coalesce(max(id), 0) FROM conversation_changes", &[])
            .await?;
        Ok(row.get(0))
    }

    /// One connection's life: `LISTEN`, catch up, then tail on every notification;
    /// it only returns on failure.
    async fn listen(&self, last: &mut i64) -> anyhow::Result<()> {
        let (client, mut connection) = self.database_url.connect(NoTls).await?;
        let notified = Arc::new(Notify::new());
        let wake = notified.clone();
        // Notifications surface only through poll_message, which also drives the
        // connection's queries.
        let driver = tokio::spawn(async move {
            while let Some(message) =
                futures::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if let AsyncMessage::Notification(_) = message? {
                    wake.notify_one();
                }
            }
            Ok::<_, tokio_postgres::Error>(())
        });
        // Dropped with this future (at shutdown too): the connection goes with it.
        let mut driver = AbortOnDrop(driver);
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        tracing::debug!("live feed listening");
        loop {
            // Tail first: changes committed while (re)connecting had no listener.
            self.tail(last).await?;
            tokio::select! {
                ended = &mut driver.0 => {
                    ended??;
                    anyhow::bail!("the listening connection closed");
                }
                _ = notified.notified() => {}
                _ = tokio::time::sleep(SAFETY_TAIL) => {}
            }
        }
    }

    /// Broadcasts every change after `last`, oldest first.
    async fn tail(&self, last: &mut i64) -> anyhow::Result<()> {
        let conn = self.pool.get().await?;
        loop {
            let rows = conn
                .query(
                    "SELECT id, page_id, psid FROM conversation_changes WHERE id > $1
                     ORDER BY id LIMIT $2",
                    &[&*last, &TAIL_BATCH],
                )
                .await?;
            let Some(newest) = rows.last().map(|r| r.get::<_, i64>(0)) else {
                return Ok(());
            };
            // A conversation changed twice in the batch is sent once, at its newest.
            let mut newest_of: BTreeMap<(String, String), i64> = BTreeMap::new();
            for r in &rows {
                newest_of.insert((r.get(1), r.get(2)), r.get(0));
            }
            let mut keys: Vec<(i64, String, String)> = newest_of
                .into_iter()
                .map(|((page, psid), id)| (id, page, psid))
                .collect();
            keys.sort();
            for change in items_of(&**conn, Caller::Operator, keys, self.human_agent).await? {
                // An error only means no client is connected right now.
                if self.feed.tx.send(Arc::new(change)).is_err() {
                    tracing::trace!("a change with no client to receive it");
                }
            }
            *last = newest;
            if (rows.len() as i64) < TAIL_BATCH {
                return Ok(());
            }
        }
    }
}

/// Aborts the connection's task when the session using it ends.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sleeps; true when `stop` was cancelled first.
async fn sleep_or_stop(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
