//! landgate's admission engine, pure: a Pod in; a JSON patch, the policies,
//! the warnings and one [`Outcome`] out. No IO, no clock, no transport; the
//! webhook feeds it and answers the API server.
//!
//! - [`mutate`]: the entry point, [`mutate::mutate_pod`], and its phases:
//!   `read` → `reinvoke` → `decide` → `wrap` / `unwrap`, with `inject`,
//!   `container`, `status` and `patch` building what they write.
//! - [`derive`](mod@derive): every rule about what a container may do (annotations,
//!   settings precedence, policy derivation).
//! - [`mount_path`]: mount paths normalised as the kubelet does, and the
//!   checks that keep `/landgate` landgate's.
//! - [`update`]: old Pod and new Pod in, whether an update may touch the
//!   sandbox landgate built.
//! - [`validate`]: the pod as it will be stored, after every mutating
//!   webhook, judged by what the mutating pass would still change.
//! - [`ephemeral`]: `kubectl debug`'s ephemeral containers, wrapped like
//!   the pod's own, their shape their record.
//! - [`exec`]: `kubectl exec` / `kubectl attach` into a wrapped pod:
//!   rewritten to run through the launcher, refused, or admitted.
//! - [`settings`]: what the operator configured.
#![forbid(unsafe_code)]

mod container;
mod decide;
pub mod derive;
pub mod ephemeral;
mod error;
pub mod exec;
pub mod image;
mod inject;
pub mod mount_path;
pub mod mutate;
mod outcome;
pub mod patch;
mod read;
mod reinvoke;
pub mod settings;
mod status;
mod unwrap;
pub mod update;
pub mod validate;
mod wrap;

#[cfg(test)]
mod tests;

pub use mutate::{MutateError, Mutation, PodContext, mutate_pod};
pub use outcome::Outcome;
pub use validate::validate_pod;
