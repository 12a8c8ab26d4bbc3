//! landgate-registry against a real registry: Debian's docker-registry,
//! images pushed by skopeo (landgate_e2e::registry). These tests fail, never
//! skip, when the tools are missing: the message says what to install.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

mod auth;
mod cache;
mod fake;
mod hostile;
mod images;
mod support;
mod transport;
