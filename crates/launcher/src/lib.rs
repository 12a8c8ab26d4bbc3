//! landgate's launcher: the policy wire format shared with the webhook, and
//! the code that turns a policy into an enforced Landlock domain and then
//! becomes the sandboxed command.
//!
//! Rooms: [`policy`] (wire type), [`cli`] (argv), [`launch`] (the flow),
//! [`ruleset`] (policy → Landlock, status), [`seccomp`] (the MPTCP, TCP
//! Fast Open and io_uring filters), [`exec`] (PATH lookup, execve), [`install`],
//! [`features`], [`kernel`] (ABI probe), [`error`] (errors and exit codes).
//!
//! The launcher is synchronous and single-threaded on purpose:
//! `landlock_restrict_self` and seccomp restrict the calling thread only.

#![deny(unsafe_code)]

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
