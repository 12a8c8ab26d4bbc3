//! landgate's launcher: turns a policy (the wire type and its names live in
//! the contract crate, `landgate_policy`) into an enforced Landlock domain,
//! then becomes the sandboxed command.
//!
//! Rooms: [`arena`] (the binary's allocator), [`cli`] (argv), [`launch`] (the flow), [`ruleset`] (policy →
//! assessment → plan → Landlock, and the status report), [`seccomp`] (the
//! MPTCP, TCP Fast Open and io_uring filters), [`exec`] (PATH lookup,
//! execve), [`install`], [`features`], [`kernel`] (ABI probe), [`error`]
//! (errors and exit codes).
//!
//! The launcher is synchronous and single-threaded on purpose:
//! `landlock_restrict_self` and seccomp restrict the calling thread only.

#![deny(unsafe_code)]

pub mod arena;
pub mod cli;
pub mod error;
pub mod exec;
pub mod features;
pub mod install;
pub mod kernel;
pub mod launch;
pub mod ruleset;
pub mod seccomp;

pub use error::LaunchError;
pub use launch::run;
