//! oauth-api against real Postgres and NATS, the fake Graph API and, for the
//! connect self-test, the real ingest and projector.

mod connect;
mod database;
mod headers;
mod instagram;
mod integrations;
mod keys;
mod secrets;
mod sessions;
mod state;
mod support;
