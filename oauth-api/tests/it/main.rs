//! oauth-api against real Postgres and NATS, the fake Graph API and, for the
//! connect self-test, the real ingest and projector.

mod connect;
mod console;
mod database;
mod headers;
mod integrations;
mod keys;
mod secrets;
mod sessions;
mod state;
mod support;
