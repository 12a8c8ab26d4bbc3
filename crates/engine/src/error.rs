//! Why a pod is refused; every message names the pod, the container and the
//! field, and says how to fix it.

use crate::derive::AnnotationError;
use crate::mount_path::MountError;

/// Why a pod is refused; the message names the pod, container and field.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MutateError {
    /// (`error`, not `source`: the message already includes it, so it is
    /// not chained again.)
    #[error("pod {pod}: {error}")]
    Annotation {
        pod: String,
        error: Box<AnnotationError>,
    },
    #[error(
        "pod {pod}: container {container:?} ({field}) sets {what} and landgate cannot wrap it; refused because {because}. Set `command:` to the image's entrypoint (`docker inspect` shows it), or opt the pod out with landgate.dev/inject: \"false\" where its namespace allows it (landgate.dev/allow-opt-out: \"true\")"
    )]
    UnknownEntrypoint {
        pod: String,
        container: String,
        field: String,
        /// What it sets, why the entrypoint is unknown, and why its image
        /// could not be looked up when it was.
        what: String,
        because: String,
    },
    #[error(
        "pod {pod}: container {container:?} ({field}) sets neither `command` nor `args`, and its image {image:?} has neither Entrypoint nor Cmd: there is nothing to run; set `command:`"
    )]
    NothingToRun {
        pod: String,
        container: String,
        field: String,
        image: String,
    },
    #[error(
        "pod {pod}: {platforms}, so what container {container:?} runs depends on the node, but it requires enforcement ({origin} = required); pin a single-platform image (name@sha256:… of one platform's manifest), set `command:` and PATH, or allow best-effort enforcement for it"
    )]
    PlatformsDisagree {
        pod: String,
        container: String,
        /// "the platforms of image "…" disagree (…)"
        platforms: String,
        origin: String,
    },
    #[error(
        "pod {pod}: {why}, but container {container:?} requires enforcement ({origin} = required); {fix}"
    )]
    EnforcementUnreachable {
        pod: String,
        container: String,
        /// Where `required` came from ([`crate::derive::Origin`], rendered).
        origin: String,
        why: String,
        fix: &'static str,
    },
    #[error("pod {pod}: {field} {what}, which landgate reserves for its launcher; {fix}")]
    Reserved {
        pod: String,
        field: String,
        what: String,
        fix: &'static str,
    },
    /// (`error`, not `source`: the message already includes it.)
    #[error("pod {pod}: {error}")]
    Mount { pod: String, error: Box<MountError> },
    #[error(
        "pod {pod}: {field} was changed after landgate wrapped the pod ({what}); landgate refuses a pod whose sandbox was altered and never wraps a container twice. If another mutating webhook makes this change, order it before landgate; if the manifest was copied from a running pod, re-create it from the original manifest (without the landgate.dev/status annotation, landgate-init, the landgate volume and the /landgate/landgate exec -- prefixes)"
    )]
    Tampered {
        pod: String,
        field: String,
        what: String,
    },
    #[error(
        "pod {pod}: container {container:?} requires enforcement ({origin} = required), but its {why}: a program planted on PATH would run unsandboxed when `kubectl exec` names it. Set PATH under env to absolute directories that no container can write"
    )]
    UnsafePath {
        pod: String,
        container: String,
        why: String,
        origin: String,
    },
    #[error(
        "pod {pod}: container {container:?} requires enforcement ({enforcement_origin} = required), but {io_uring_origin} = allow gives up its TCP enforcement (io_uring gets past Landlock's TCP rules); remove one of the two"
    )]
    IoUringUnderRequired {
        pod: String,
        container: String,
        enforcement_origin: String,
        io_uring_origin: String,
    },
    #[error(
        "pod {pod}: annotation landgate.dev/status {problem}; landgate writes this annotation itself: remove it from the manifest"
    )]
    InvalidStatus { pod: String, problem: String },
    #[error(
        "pod {pod}: container name {container:?} is used twice; Kubernetes requires unique names across containers and init containers"
    )]
    DuplicateContainer { pod: String, container: String },
    #[error(
        "pod {pod}: landgate built a patch that does not apply ({message}); this is a landgate bug, please report it with the pod manifest"
    )]
    Internal { pod: String, message: String },
}

impl MutateError {
    /// A short, stable name for the kind of refusal: the `reason` label of
    /// `landgate_refusals_total` and of the log line. Few values, so that
    /// dashboards can count by them.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Annotation { error, .. } => error.reason(),
            Self::UnknownEntrypoint { .. } => "unknown-entrypoint",
            Self::NothingToRun { .. } => "nothing-to-run",
            Self::PlatformsDisagree { .. } => "platforms-disagree",
            Self::EnforcementUnreachable { .. } => "enforcement-unreachable",
            Self::Reserved { .. } => "reserved",
            Self::Mount { .. } => "mount",
            Self::Tampered { .. } => "tampered",
            Self::UnsafePath { .. } => "unsafe-path",
            Self::IoUringUnderRequired { .. } => "io-uring-under-required",
            Self::InvalidStatus { .. } => "invalid-status",
            Self::DuplicateContainer { .. } => "duplicate-container",
            Self::Internal { .. } => "internal",
        }
    }
}
