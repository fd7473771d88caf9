//! Filled by a later issue; this crate has no binary yet.
