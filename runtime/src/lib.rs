//! What every pagesync process shares: configuration from the environment,
//! telemetry and trace context across the queue, the operational HTTP endpoints, the HTTP listener with its limits,
//! connections and graceful shutdown.

pub mod config;
pub mod connect;
mod error_chain;
pub mod http;
mod http_url;
pub mod ops;
pub mod shutdown;
mod socket;
pub mod telemetry;
pub mod trace;
pub mod watchdog;

pub use error_chain::ErrorChain;
pub use http::{BindError, HttpLimits, HttpService, bind, serve};
pub use http_url::{HttpUrl, HttpUrlError};
pub use tokio_util::sync::CancellationToken;
