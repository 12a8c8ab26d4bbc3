//! The engine's entry point: Pod in; JSON patch, per-container policies,
//! warnings and one [`Outcome`] out. No IO, and no copy of the pod: the
//! mutated pod is computed only where it is shown ([`crate::patch::apply`]).
//!
//! What a wrapped pod gets (the contract: `crates/policy/README.md`):
//!
//! - an emptyDir volume `landgate` (medium Memory, [`VOLUME_SIZE_LIMIT`]);
//! - FIRST among the init containers, `landgate-init`, which runs
//!   `/usr/local/bin/landgate install /landgate --wrappers sh,bash,…`
//!   (`inject`);
//! - in every other container (init containers, native sidecars, app
//!   containers): the volume read-only at `/landgate`, `command` prefixed
//!   with `/landgate/landgate exec --` (args are untouched: the kubelet
//!   appends them to the command), exec probes and exec lifecycle hooks
//!   prefixed the same way, `PATH=/landgate/bin:<PATH>` and
//!   `LANDGATE_POLICY=<policy JSON>`, `LANDGATE_ACTIVE` set empty (an image
//!   ENV must not pre-set the marker); user-supplied `LANDGATE_*` env removed;
//! - the `landgate.dev/status` annotation ([`Status`]) and the
//!   `landgate.dev/profile` label that sums it up ([`PROFILE_LABEL`]).
//!
//! The phases, one file each: `read` (names, annotations and settings,
//! resolved once), `reinvoke` (verifying a previous pass), `decide` (wrap,
//! skip or refuse), `wrap` / `unwrap`; and what they write: `inject`,
//! `container`, `status`, [`crate::patch`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use landgate_policy::Policy;

use crate::decide::Decision;
use crate::image::Images;
use crate::patch::Ops;
use crate::read::Pass;
use crate::settings::Settings;

pub use crate::error::MutateError;
pub use crate::inject::{
    LAUNCHER_UID, VOLUME_SIZE_LIMIT, init_container, launcher_mount, launcher_volume,
};
pub use crate::outcome::Outcome;
pub use crate::reinvoke::SERVICE_ACCOUNT_TOKEN_DIR;
pub use crate::status::{
    MIXED_PROFILES, NOT_SANDBOXED, PROFILE_LABEL, PathEdit, STATUS_VERSION, Status,
    WrappedContainer, container_hash, parse_status, wrapped_containers,
};
pub use landgate_policy::argv::exec as wrap_command;
pub use landgate_policy::layout::{
    DIR as MOUNT_PATH, IMAGE_LAUNCHER, INIT_CONTAINER as INIT_CONTAINER_NAME, LAUNCHER,
    VOLUME as VOLUME_NAME, WRAPPER_DIR,
};

/// The kubelet's annotation on mirror pods of static pods.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Where the pod is being admitted: the namespace and that namespace's
/// annotations (the middle layer of the settings precedence; empty until the
/// namespace reflector lands), and what the registry said about the pod's
/// images ([`NO_IMAGES`] when they were not looked up).
#[derive(Debug, Clone, Copy)]
pub struct PodContext<'a> {
    pub namespace: &'a str,
    pub namespace_annotations: &'a BTreeMap<String, String>,
    pub images: &'a Images,
}

/// No image looked up: containers without `command` keep an unknown
/// entrypoint and PATH falls back to `--default-path`.
pub const NO_IMAGES: &Images = &Images::new();

/// The engine's answer for an admitted pod.
#[derive(Debug, Clone)]
pub struct Mutation {
    /// [`Outcome::Wrapped`], [`Outcome::AlreadyWrapped`] or
    /// [`Outcome::Skipped`].
    pub outcome: Outcome,
    /// RFC 6902 patch for the input pod (may be empty).
    pub patch: json_patch::Patch,
    /// Policy per container name (empty unless wrapped).
    pub policies: BTreeMap<String, Policy>,
    /// Degraded choices, for AdmissionResponse.warnings (kubectl prints
    /// them), each prefixed `landgate: `.
    pub warnings: Vec<String>,
}

impl Mutation {
    pub(crate) fn new(
        ops: Ops,
        outcome: Outcome,
        policies: BTreeMap<String, Policy>,
        warnings: Vec<String>,
    ) -> Self {
        Self {
            outcome,
            patch: json_patch::Patch(ops.0),
            policies,
            warnings: warnings
                .into_iter()
                .map(|w| format!("landgate: {w}"))
                .collect(),
        }
    }

    fn unchanged(reason: String) -> Self {
        Self::new(
            Ops::default(),
            Outcome::Skipped(reason),
            BTreeMap::new(),
            Vec::new(),
        )
    }
}

/// Decides what to do with `pod` and builds the patch.
pub fn mutate_pod(
    settings: &Settings,
    context: PodContext<'_>,
    pod: &Pod,
) -> Result<Mutation, MutateError> {
    let label = pod_label(context.namespace, pod);
    let no_annotations = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&no_annotations);

    if settings
        .excluded_namespaces
        .iter()
        .any(|n| n == context.namespace)
    {
        return Ok(Mutation::unchanged(format!(
            "namespace {} is excluded (--excluded-namespaces)",
            context.namespace
        )));
    }
    if annotations.contains_key(MIRROR_ANNOTATION) {
        return Ok(Mutation::unchanged(
            "mirror pod of a static pod: the kubelet runs it from its manifest file".into(),
        ));
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Mutation::unchanged("pod has no spec".into()));
    };

    let pass = Pass::read(settings, context, pod, spec, annotations, label)?;
    let mut warnings = Vec::new();
    match pass.decide(&mut warnings)? {
        Decision::Skip(reason) => Ok(pass.skip(reason, warnings)),
        Decision::Wrap => {
            pass.check_reserved()?;
            pass.wrap(warnings)
        }
    }
}

pub(crate) fn pod_label(namespace: &str, pod: &Pod) -> String {
    let name = match (&pod.metadata.name, &pod.metadata.generate_name) {
        (Some(name), _) => name.clone(),
        (None, Some(prefix)) => format!("{prefix}*"),
        (None, None) => "(unnamed)".into(),
    };
    if namespace.is_empty() {
        name
    } else {
        format!("{namespace}/{name}")
    }
}
