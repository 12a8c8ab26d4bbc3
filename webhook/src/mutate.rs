//! The mutation engine: Pod in, JSON patch + mutated Pod + per-container
//! policies + warnings out. No IO.
//!
//! PUBLIC API CONTRACT (the server and preview code against it; keep the
//! signatures, fill in the bodies).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use landgate_launcher::policy::Policy;

use crate::settings::Settings;

/// Where the pod is being admitted: the namespace and that namespace's
/// annotations (the middle layer of the settings precedence; empty until the
/// namespace reflector lands).
#[derive(Debug, Clone, Copy)]
pub struct PodContext<'a> {
    pub namespace: &'a str,
    pub namespace_annotations: &'a BTreeMap<String, String>,
}

/// What the engine decided for an admitted pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every container now runs through the launcher.
    Wrapped,
    /// A previous pass already wrapped this pod exactly like this: empty patch.
    AlreadyWrapped,
    /// Admitted unwrapped; the string says why (opt-out, excluded namespace,
    /// Windows, mirror pod, unknown entrypoint, ...).
    Skipped(String),
}

/// The engine's answer for an admitted pod.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub verdict: Verdict,
    /// RFC 6902 patch that turns the input pod into `pod` (may be empty).
    pub patch: json_patch::Patch,
    /// The pod after the patch.
    pub pod: Pod,
    /// Policy per container name (empty unless wrapped).
    pub policies: BTreeMap<String, Policy>,
    /// Degraded choices, for AdmissionResponse.warnings (kubectl prints them).
    pub warnings: Vec<String>,
}

/// Why a pod is refused; the message names the pod, container and field.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MutateError {
    #[error("{0}")]
    Todo(String),
}

/// Decides what to do with `pod` and builds the patch.
pub fn mutate_pod(
    settings: &Settings,
    context: PodContext<'_>,
    pod: &Pod,
) -> Result<Mutation, MutateError> {
    let _ = (settings, context, pod);
    todo!("mutation engine")
}
