//! The inbox API (contract §6, docs/inbox.md): conversations, their messages,
//! replies through the Send API, open/closed status and live updates.

pub mod idempotency;
pub mod outbound;
pub mod refusal;
pub mod reply;
pub mod status;
pub mod target;
pub mod window;
