//! The shared HTTP listener, served on port 0 with a router made for the test, and
//! the log output of a process.

mod http;
mod logs;
