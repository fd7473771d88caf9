//! The projector's spans inside the publishers' traces: applying a batch and
//! writing its files each get one span per distinct `traceparent` among the
//! batch's messages, a child of the publishing span (see `pagesync_runtime::trace`).
//! A batch holds the events of many requests, so one batch span could belong to
//! one trace only; a delivery's events share their `traceparent`, so there are as
//! many spans as traced publishes in the batch, not as events.

use std::collections::BTreeSet;

use async_nats::jetstream::Message;
use pagesync_runtime::trace::{TRACEPARENT, continue_trace};
use tracing::Span;

/// Spans open while held; dropping them ends them.
#[must_use = "the spans end when dropped"]
pub struct BatchSpans {
    _open: Vec<Span>,
}

/// One span from `make` per distinct `traceparent` of `messages`. Empty when no
/// message carries one or this process does not trace: then the cost is one
/// header lookup per message.
pub fn spans<'a>(
    messages: impl IntoIterator<Item = &'a Message>,
    make: impl Fn() -> Span,
) -> BatchSpans {
    let parents: BTreeSet<&str> = messages
        .into_iter()
        .filter_map(|m| m.headers.as_ref()?.get(TRACEPARENT))
        .map(|v| v.as_str())
        .collect();
    BatchSpans {
        _open: parents
            .into_iter()
            .filter_map(|tp| continue_trace(tp, &make))
            .collect(),
    }
}
