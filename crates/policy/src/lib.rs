//! The contract between landgate's two halves: the webhook, which writes it
//! into pods, and the launcher, which enforces it. Neither half depends on
//! the other; both depend on this crate. Its README is the contract in
//! prose.
//!
//! - [`Policy`]: the wire type in `LANDGATE_POLICY` (with [`Port`],
//!   [`PortSet`] and [`AbsPath`], each normalised by construction).
//! - [`env`](mod@env): the environment variables.
//! - [`layout`]: the `/landgate` volume.
//! - [`argv`]: the launcher command lines the webhook writes.
//! - [`wrappers`]: the wrapper names and their validation.
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod argv;
pub mod env;
pub mod layout;
mod path;
mod policy;
mod port;
pub mod wrappers;

pub use path::AbsPath;
pub use policy::{
    Enforcement, FsRules, NetRules, POLICY_ENV, POLICY_VERSION, Policy, PolicyError, Scopes,
};
pub use port::{Port, PortSet};
