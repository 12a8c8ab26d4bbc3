//! landgate's admission webhook.
//!
//! Rooms, from pure to IO:
//! - [`settings`]: what the operator configured (flags / env).
//! - [`derive`]: every rule about what a container may do (policy derivation).
//! - [`mutate`]: Pod in, JSON patch + mutated Pod + policies + warnings out.
//! - [`preview`]: the same for manifests and workloads, for humans.
//! - [`update`]: old Pod and new Pod in, whether a pod update may touch the
//!   sandbox landgate built (admit or refuse; never a patch).
//! - [`admission`]: AdmissionReview in, AdmissionResponse out.
//! - [`server`], [`tls`], [`metrics`]: transport.
#![forbid(unsafe_code)]

pub mod admission;
pub mod cli;
pub mod images;
pub mod metrics;
pub mod namespaces;
pub mod preview;
pub mod server;
pub mod tls;
