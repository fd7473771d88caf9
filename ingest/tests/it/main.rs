//! Ingest against a real NATS JetStream: each test has its own stream and prefix.

mod app;
mod deliveries;
mod handshake;
mod outages;
mod process;
mod signatures;
mod slow_clients;
mod trace_context;
