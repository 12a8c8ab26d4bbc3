//! landgate's admission webhook: the transport and the process edge around
//! the pure engine (`landgate-engine`).
//!
//! - [`admission`]: AdmissionReview in, AdmissionResponse out, for the
//!   mutating and the validating webhook.
//! - [`preview`]: the engine on manifests and workloads, for humans.
//! - [`images`], [`namespaces`]: what admission reads from the registry and
//!   the API server (looked up before, cached); [`connect`]: `kubectl exec`
//!   and `attach`, with the pod's metadata read first.
//! - [`events`]: Kubernetes Events about refused and unsandboxed pods
//!   (best-effort, after the answer).
//! - [`server`], [`tls`], [`metrics`]: transport.
//! - [`cli`]: flags and environment, the process edge.
#![forbid(unsafe_code)]

pub mod admission;
pub mod cli;
pub mod connect;
pub mod events;
pub mod images;
pub mod metrics;
pub mod namespaces;
pub mod preview;
pub mod server;
pub mod tls;
