//! The console in a real browser (Chromium, headless) against the real oauth-api,
//! ingest and projector, with the fake Graph API. Few, and waiting on the DOM.

#[path = "../it/support.rs"]
#[allow(dead_code)]
mod support;

mod driver;
mod inbox;
mod recovery;
mod settings;
