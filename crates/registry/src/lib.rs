//! Image resolution: what the registry says an image runs (Entrypoint, Cmd,
//! PATH, WorkingDir, User), for the containers that do not set `command`.
//! The webhook calls [`Resolver::resolve`] before the engine and hands the
//! [`Images`](landgate_engine::image::Images) it returns to the engine, which
//! never does IO itself.
//!
//! Rooms:
//! - [`config`]: the resolver's settings and the `--platform` it resolves for.
//! - [`credentials`]: Docker `config.json` and image pull Secrets.
//! - `resolver`: one call's budget, single-flighted lookups in spawned tasks.
//! - `lookup`: one lookup (cache, then registry), the image's config out.
//! - `fetch`, `challenge`: the registry round trips (capped, authenticated)
//!   and what their failures mean.
//! - `manifest`, `platforms`: pure parsing of manifests and configs, and the
//!   choice among an index's platforms.
//! - `cache`, `clients`, `metrics`: what the lookups share.
#![forbid(unsafe_code)]

mod cache;
mod challenge;
mod clients;
pub mod config;
pub mod credentials;
mod error;
mod fetch;
mod lookup;
mod manifest;
mod metrics;
mod platforms;
mod resolver;

pub use config::{Platform, PlatformError, ResolverConfig};
pub use credentials::{CredentialsError, DockerConfig};
pub use error::ResolverError;
pub use resolver::Resolver;
