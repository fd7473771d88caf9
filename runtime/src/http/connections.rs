//! The open connections of one listener: capped, and when full the one idle longest
//! (waiting for a request, or still sending its head) makes room for the newcomer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

pub(crate) struct Connections {
    service: &'static str,
    max: usize,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    epoch: Instant,
}

/// One open connection, as the registry sees it.
struct Conn {
    /// Requests being handled; 0 means it may be closed without losing work.
    busy: AtomicU32,
    /// Microseconds since the registry's epoch when it last became idle.
    idle_since: AtomicU64,
    stop: CancellationToken,
}

/// A connection's place in the registry, freed when dropped.
pub(crate) struct Slot {
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Connections>,
}

/// Marks a connection busy while a request is handled.
pub(crate) struct InRequest {
    conn: Arc<Conn>,
    registry: Arc<Connections>,
}

impl Connections {
    pub(crate) fn new(max: usize, service: &'static str) -> Self {
        Self {
            service,
            max,
            open: Mutex::new(HashMap::with_capacity(max.min(4096))),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Registers a new connection, closing the longest-idle one when full. `None`
    /// when every open connection is in a request: the newcomer is to be refused.
    pub(crate) fn admit(self: &Arc<Self>, shutdown: &CancellationToken) -> Option<Slot> {
        let mut open = self.lock();
        if open.len() >= self.max {
            if !evict_from(&mut open) {
                return None;
            }
            self.evicted();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            busy: AtomicU32::new(0),
            idle_since: AtomicU64::new(self.now()),
            stop: shutdown.child_token(),
        });
        open.insert(id, conn.clone());
        Some(Slot {
            id,
            conn,
            registry: self.clone(),
        })
    }

    /// Closes the longest-idle connection; false when every one is in a request.
    pub(crate) fn evict_idlest(&self) -> bool {
        let evicted = evict_from(&mut self.lock());
        if evicted {
            self.evicted();
        }
        evicted
    }

    /// Publishes the open-connection gauge.
    pub(crate) fn record(&self) {
        let open = self.lock().len();
        metrics::gauge!("pagesync_http_connections_open", "service" => self.service)
            .set(open as f64);
    }

    fn evicted(&self) {
        metrics::counter!("pagesync_http_connections_evicted_total", "service" => self.service)
            .increment(1);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panic while holding the map cannot leave it inconsistent: keep using it.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// Removes and stops the idle connection that has waited longest.
fn evict_from(open: &mut HashMap<u64, Arc<Conn>>) -> bool {
    let idlest = open
        .iter()
        .filter(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
        .min_by_key(|(_, c)| c.idle_since.load(Ordering::Relaxed))
        .map(|(id, _)| *id);
    match idlest.and_then(|id| open.remove(&id)) {
        Some(conn) => {
            conn.stop.cancel();
            true
        }
        None => false,
    }
}

impl Slot {
    /// Resolves when the connection is to close: shutdown, or evicted to make room.
    pub(crate) async fn stopped(&self) {
        self.conn.stop.cancelled().await
    }

    pub(crate) fn in_request(&self) -> impl Fn() -> InRequest + Send + Sync + 'static {
        let (conn, registry) = (self.conn.clone(), self.registry.clone());
        move || {
            conn.busy.fetch_add(1, Ordering::AcqRel);
            InRequest {
                conn: conn.clone(),
                registry: registry.clone(),
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        // An evicted connection was removed already; never remove its successor's id.
        if open
            .get(&self.id)
            .is_some_and(|c| Arc::ptr_eq(c, &self.conn))
        {
            open.remove(&self.id);
        }
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.registry.now(), Ordering::Relaxed);
        self.conn.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_full_the_longest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let registry = Arc::new(Connections::new(2, "test"));
        let shutdown = CancellationToken::new();
        let first = registry.admit(&shutdown).unwrap();
        let second = registry.admit(&shutdown).unwrap();
        let _busy = second.in_request()();

        let third = registry.admit(&shutdown).expect("the idle one makes room");
        assert!(first.conn.stop.is_cancelled());
        assert!(!second.conn.stop.is_cancelled());

        let _also_busy = third.in_request()();
        assert!(
            registry.admit(&shutdown).is_none(),
            "every connection is in a request"
        );
        drop(first);
        assert_eq!(
            registry.lock().len(),
            2,
            "the evicted slot does not free a second place"
        );
    }

    #[test]
    fn a_connection_whose_request_ended_is_idle_again() {
        let registry = Arc::new(Connections::new(1, "test"));
        let shutdown = CancellationToken::new();
        let only = registry.admit(&shutdown).unwrap();
        drop(only.in_request()());
        assert!(registry.admit(&shutdown).is_some());
        assert!(only.conn.stop.is_cancelled());
    }
}
