//! A typed Graph API client shared by the poller and oauth-api.
//!
//! Errors are classified by HTTP status, `code` and `error_subcode` (see
//! [`GraphError`]); throttling stops calls for the affected page (or the whole app)
//! for Facebook's estimate; 5xx and network failures are retried with jittered
//! exponential backoff; tokens live in [`AccessToken`] and are redacted from every
//! URL that is logged.

pub mod client;
pub mod config;
mod endpoints;
pub mod error;
mod gate;
mod lenient;
mod pager;
pub mod send;
pub mod token;
pub mod types;
pub mod usage;

pub use client::GraphClient;
pub use config::{GraphConfig, RetryPolicy};
pub use endpoints::{MAX_READABLE_MESSAGES, PAGE_FIELDS, SUBSCRIBED_FIELDS};
pub use error::{FacebookError, GraphError, THROTTLE_CODES, Transport};
pub use pager::Pager;
pub use send::{AttachmentKind, OutgoingMessage};
pub use token::{AccessToken, redact_url};
pub use types::*;
