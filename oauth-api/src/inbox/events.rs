//! `GET /api/events`: Server-Sent Events for the caller's conversations
//! (contract §6, docs/inbox.md "Live updates").

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use super::feed::{Change, changes_after};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::store::Caller;

/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events a client's connection may have in flight before its task waits.
const CLIENT_BUFFER: usize = 64;

/// The `Last-Event-ID` a reconnecting client sends (an `id` this stream gave).
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid_last_event_id",
            "Last-Event-ID is not an event id of this stream",
        )
    };
    let text = v.to_str().map_err(|_| bad())?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .map(Some)
        .ok_or_else(bad)
}

/// Live updates: one `conversation` event per change of a visible conversation.
#[utoipa::path(
    get,
    path = "/api/events",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event id")),
    security(("session" = []), ("operator" = [])),
    responses(
        (status = 200, description = "text/event-stream: `event: conversation`, `id: <change id>`, \
            `data: <the conversation's list item>`; a comment line every 15 s", content_type = "text/event-stream", body = String),
        (status = 400, description = "a malformed Last-Event-ID", body = ErrorBody),
        (status = 401, description = "no session cookie and no valid operator token", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let resume = last_event_id(&headers)?;
    // Subscribed before the missed changes are read, so none falls in between.
    let live = state.inbox.feed.subscribe();
    let missed = match resume {
        Some(after) => {
            let conn = state.pool.get().await?;
            changes_after(&**conn, caller, after, state.inbox.human_agent).await?
        }
        None => Vec::new(),
    };
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    let client = Client {
        state: state.clone(),
        caller,
        sent: resume.unwrap_or(0),
        tx,
    };
    tokio::spawn(client.run(missed, live));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    // nginx would otherwise buffer the stream.
    Ok(([("x-accel-buffering", "no")], sse).into_response())
}

/// One connected client: forwards its visible changes until it leaves or the
/// server shuts down.
struct Client {
    state: Arc<AppState>,
    caller: Caller,
    /// The newest change id sent (or the one it resumed after).
    sent: i64,
    tx: mpsc::Sender<Event>,
}

impl Client {
    async fn run(mut self, missed: Vec<Change>, mut live: broadcast::Receiver<Arc<Change>>) {
        metrics::gauge!("pagesync_oauth_api_event_streams").increment(1.0);
        let stop = self.state.inbox.feed.stop.clone();
        if self.send_all(missed).await {
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = self.tx.closed() => break,
                    next = live.recv() => next,
                };
                let more = match next {
                    Ok(change) => self.send(&change).await,
                    // Fell behind the broadcast: read what it missed from the table.
                    Err(RecvError::Lagged(_)) => self.catch_up().await,
                    Err(RecvError::Closed) => false,
                };
                if !more {
                    break;
                }
            }
        }
        metrics::gauge!("pagesync_oauth_api_event_streams").decrement(1.0);
    }

    async fn catch_up(&mut self) -> bool {
        let human_agent = self.state.inbox.human_agent;
        let missed = match self.state.pool.get().await {
            Ok(conn) => changes_after(&**conn, self.caller, self.sent, human_agent).await,
            Err(e) => {
                tracing::warn!(error = %e, "event stream cannot catch up; closing it");
                return false;
            }
        };
        match missed {
            Ok(missed) => self.send_all(missed).await,
            Err(e) => {
                tracing::warn!(error = %e, "event stream cannot catch up; closing it");
                false
            }
        }
    }

    async fn send_all(&mut self, changes: Vec<Change>) -> bool {
        for change in changes {
            if !self.send(&change).await {
                return false;
            }
        }
        true
    }

    /// Sends a change the client may see and has not seen; false when it left.
    async fn send(&mut self, change: &Change) -> bool {
        if change.id <= self.sent || !change.visible_to(self.caller) {
            return true;
        }
        self.sent = change.id;
        self.tx.send(change.event.clone()).await.is_ok()
    }
}
