//! Integration tests of the projector against the real NATS and Postgres.

mod apply;
mod coverage;
mod failures;
mod inbox;
mod lag;
mod instagram;
mod lenient;
mod logs;
mod migrate;
mod property;
mod rebuild;
mod stall;
mod support;
