//! oauth-api against real Postgres and NATS, the fake Graph API and, for the
//! connect self-test, the real ingest and projector.

mod admin;
mod connect;
mod console;
mod cors;
mod database;
mod headers;
mod idempotency;
mod inbox;
mod inbox_write_support;
mod instagram;
mod integrations;
mod keys;
mod reply;
mod reply_outage;
mod secrets;
mod sessions;
mod state;
mod status;
mod support;
