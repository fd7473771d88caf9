//! Polling one page of the Graph API (contract §5), a library rather than part of
//! the poller service so that oauth-api's connect self-test runs the very same poll
//! without depending on another service: [`PagePoller`] reads the page, its
//! subscription and its conversations and publishes the events `schema` defines,
//! and [`config`] holds the settings both services read for it (the Graph app, the
//! token keys) and the Graph client they make.

pub mod config;
pub mod events;
pub mod poll;
pub mod store;

pub use config::{GraphArgs, TokenKeys};
pub use poll::{PageOutcome, PagePoller};
