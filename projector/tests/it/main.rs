//! Integration tests of the projector against the real NATS and Postgres.

mod apply;
mod cache;
mod coverage;
mod dead_letters;
mod failures;
mod inbox;
mod instagram;
mod lag;
mod lenient;
mod logs;
mod migrate;
mod property;
mod rebuild;
mod stall;
mod support;
