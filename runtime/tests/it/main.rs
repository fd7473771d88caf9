//! The shared HTTP listener, served on port 0 with a router made for the test.

mod http;
