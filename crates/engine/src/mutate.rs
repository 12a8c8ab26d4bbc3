//! The mutation engine: Pod in, JSON patch + mutated Pod + per-container
//! policies + warnings out. No IO.
//!
//! What a wrapped pod gets (DESIGN.md, "The two halves"):
//!
//! - an emptyDir volume `landgate` (medium Memory, [`VOLUME_SIZE_LIMIT`]);
//! - FIRST among the init containers, `landgate-init`, which runs
//!   `/usr/local/bin/landgate install /landgate --wrappers sh,bash,…`. The
//!   launcher image keeps its binary at [`IMAGE_LAUNCHER`], not at
//!   `/landgate`, because landgate-init mounts the (read-write) volume at
//!   `/landgate` and the mount would hide it; `install` copies it to
//!   `/landgate/landgate` and makes the `/landgate/bin/<name>` wrappers;
//! - in every other container (init containers, native sidecars, app
//!   containers): the volume read-only at `/landgate`, `command` prefixed
//!   with `/landgate/landgate exec --` (args are untouched: the kubelet
//!   appends them to the command), exec probes and exec lifecycle hooks
//!   prefixed the same way, `PATH=/landgate/bin:<PATH>` and
//!   `LANDGATE_POLICY=<policy JSON>`, `LANDGATE_ACTIVE` set empty (an image
//!   ENV must not pre-set the marker); user-supplied `LANDGATE_*` env removed;
//! - the `landgate.dev/status` annotation ([`Status`]).
//!
//! Reinvocation (`reinvocationPolicy: IfNeeded`) and pods that arrive
//! already carrying a status are handled by reading the status back: each
//! recorded container must still carry exactly what landgate wrote (its
//! hash), otherwise the pod is refused as tampered; its policy is derived
//! again from the current spec (a later webhook may have added a volume
//! mount); containers added since are wrapped; nothing is wrapped twice. A
//! pod whose second pass decides "skip" (say, a later webhook added a
//! container without `command`) is unwrapped again, never left
//! half-wrapped. A pod that already looks exactly as landgate would make
//! it gets an empty patch.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, MoveOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EphemeralContainer, Pod, PodSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use landgate_policy::{AbsPath, Enforcement, POLICY_ENV, Policy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::derive::{self, AnnotationError, Annotations, ContainerSettings, Origin};
use crate::mount_path::{self, MountError, Mounts};
use crate::settings::{Settings, UnknownEntrypoint};

/// The launcher volume.
pub const VOLUME_NAME: &str = mount_path::LAUNCHER_VOLUME;
/// Where the volume is mounted, in landgate-init (read-write) and in every
/// wrapped container (read-only).
pub const MOUNT_PATH: &str = derive::LAUNCHER_DIR;
/// The launcher inside wrapped containers.
pub const LAUNCHER: &str = "/landgate/landgate";
/// The wrapper symlinks; first on every wrapped container's PATH.
pub const WRAPPER_DIR: &str = "/landgate/bin";
/// The injected init container.
pub const INIT_CONTAINER_NAME: &str = "landgate-init";
/// The launcher binary inside the launcher image (see the module docs for
/// why it is not `/landgate`).
pub const IMAGE_LAUNCHER: &str = "/usr/local/bin/landgate";
/// The launcher copy is ~1 MiB; the volume lives in memory.
pub const VOLUME_SIZE_LIMIT: &str = "16Mi";
/// Where the ServiceAccount admission plugin mounts the API token
/// (`DefaultAPITokenMountPath` in kube-apiserver's serviceaccount plugin).
pub const SERVICE_ACCOUNT_TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// What the API server defaults `terminationMessagePath` to.
const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// The kubelet's annotation on mirror pods of static pods.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Version of the `landgate.dev/status` JSON.
pub const STATUS_VERSION: u32 = 1;
/// The user the launcher image runs as (its `USER`); set explicitly on
/// landgate-init only when the pod asks for root, which the init container's
/// `runAsNonRoot` would otherwise refuse at start.
pub const LAUNCHER_UID: i64 = 65532;

const EXEC_PREFIX: [&str; 3] = [LAUNCHER, "exec", "--"];
const ENV_PREFIX: &str = "LANDGATE_";
/// The launcher's "already sandboxed" marker. Every wrapped container gets
/// it explicitly empty: an image's ENV (or an envFrom source) could otherwise
/// pre-set it to 1 and make the PATH wrappers skip the sandbox for
/// `kubectl exec`; the kubelet lets the spec's env win over both.
use landgate_policy::env::ACTIVE as ACTIVE_ENV;

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
    /// (`error`, not `source`: the message already includes it, so it is
    /// not chained again.)
    #[error("pod {pod}: {error}")]
    Annotation {
        pod: String,
        error: Box<AnnotationError>,
    },
    #[error(
        "pod {pod}: container {container:?} ({field}) sets {what}, so its image entrypoint is unknown at admission and landgate cannot wrap it; refused because {because}. Set `command:` to the image's entrypoint (`docker inspect` shows it), or opt the pod out with landgate.dev/inject: \"false\""
    )]
    UnknownEntrypoint {
        pod: String,
        container: String,
        field: String,
        what: &'static str,
        because: String,
    },
    #[error(
        "pod {pod}: {why}, but container {container:?} requires enforcement ({origin} = required); {fix}"
    )]
    EnforcementUnreachable {
        pod: String,
        container: String,
        /// Where `required` came from ([`Origin`], rendered).
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

// === status annotation ===

/// The `landgate.dev/status` annotation: `{"version":1,"containers":{"web":
/// {"hash":"sha256:…","path":"added"}}}` for a wrapped pod,
/// `{"version":1,"skipped":"<reason>"}` for a pod admitted unwrapped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub version: u32,
    /// Every wrapped container, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub containers: BTreeMap<String, WrappedContainer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// What landgate did to one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedContainer {
    /// `sha256:<hex>` over what landgate wrote into the container: its name,
    /// command, `LANDGATE_POLICY` and `PATH` (see [`container_hash`]).
    pub hash: String,
    pub path: PathEdit,
}

/// How landgate put the wrapper dir on the container's PATH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathEdit {
    /// The container had no PATH: landgate added `/landgate/bin:<default>`.
    Added,
    /// The container's own PATH value got `/landgate/bin:` in front.
    Prefixed,
    /// The container's PATH comes from `valueFrom` and was left alone.
    Untouched,
}

impl Status {
    fn to_annotation(&self) -> String {
        // Plain structs of strings and maps: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_else(|err| unreachable!("status serializes: {err}"))
    }
}

/// `sha256:<hex>` of what landgate wrote into a wrapped container.
pub fn container_hash(
    name: &str,
    command: &[String],
    policy: &str,
    path: Option<&str>,
    edit: PathEdit,
) -> String {
    let canonical = serde_json::json!([name, command, policy, path, edit]).to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

// === engine ===

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
        return Ok(unchanged(
            pod,
            format!(
                "namespace {} is excluded (--excluded-namespaces)",
                context.namespace
            ),
        ));
    }
    if annotations.contains_key(MIRROR_ANNOTATION) {
        return Ok(unchanged(
            pod,
            "mirror pod of a static pod: the kubelet runs it from its manifest file".into(),
        ));
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(unchanged(pod, "pod has no spec".into()));
    };

    let engine = Engine::read(settings, context, pod, spec, annotations, label)?;
    engine.decide_and_build()
}

/// The mount checks of a wrapped pod ([`mount_path::check`]) for one
/// ephemeral container that an update of the `ephemeralcontainers`
/// subresource adds (see `update`). Ephemeral containers are not wrapped,
/// so none has landgate's own mount.
pub fn check_container_mounts(
    pod: &str,
    field: &str,
    container: &EphemeralContainer,
    spec: &PodSpec,
) -> Result<(), MutateError> {
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    mount_path::check(
        Mounts::of_ephemeral(field, container),
        volumes,
        |_| false,
        false,
    )
    .map_err(|error| MutateError::Mount {
        pod: pod.to_owned(),
        error: Box::new(error),
    })
}

fn unchanged(pod: &Pod, reason: String) -> Mutation {
    Mutation {
        verdict: Verdict::Skipped(reason),
        patch: json_patch::Patch(Vec::new()),
        pod: pod.clone(),
        policies: BTreeMap::new(),
        warnings: Vec::new(),
    }
}

fn pod_label(namespace: &str, pod: &Pod) -> String {
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

/// Which list a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Init,
    App,
}

impl List {
    fn json(self) -> &'static str {
        match self {
            List::Init => "initContainers",
            List::App => "containers",
        }
    }
}

/// A container of the pod (not landgate-init), as found and as it was
/// before landgate touched it.
struct View<'a> {
    list: List,
    /// Index in the input pod's list.
    index: usize,
    current: &'a Container,
    /// The container without landgate's changes (a clone of `current` for
    /// containers landgate has not wrapped yet).
    original: Container,
    settings: ContainerSettings,
}

impl View<'_> {
    fn field(&self) -> String {
        format!("spec.{}[{}]", self.list.json(), self.index)
    }
}

struct Engine<'a> {
    settings: &'a Settings,
    pod: &'a Pod,
    spec: &'a PodSpec,
    label: String,
    annotations: Annotations,
    /// Parsed `landgate.dev/status`.
    status: Option<Status>,
    /// True when the status records wrapped containers (a previous pass).
    wrapped_before: bool,
    init_pos: Option<usize>,
    volume_pos: Option<usize>,
    views: Vec<View<'a>>,
}

impl<'a> Engine<'a> {
    fn read(
        settings: &'a Settings,
        context: PodContext<'_>,
        pod: &'a Pod,
        spec: &'a PodSpec,
        annotations: &'a BTreeMap<String, String>,
        label: String,
    ) -> Result<Self, MutateError> {
        let status = match annotations.get(derive::STATUS) {
            None => None,
            Some(raw) => Some(
                parse_status(raw).map_err(|problem| MutateError::InvalidStatus {
                    pod: label.clone(),
                    problem,
                })?,
            ),
        };
        let wrapped_before = status.as_ref().is_some_and(|s| !s.containers.is_empty());
        let init_containers = spec.init_containers.as_deref().unwrap_or_default();
        let init_pos = init_containers
            .iter()
            .position(|c| c.name == INIT_CONTAINER_NAME);
        let volume_pos = spec
            .volumes
            .iter()
            .flatten()
            .position(|v| v.name == VOLUME_NAME);

        let mut engine = Engine {
            settings,
            pod,
            spec,
            label,
            annotations: Annotations::default(),
            status,
            wrapped_before,
            init_pos,
            volume_pos,
            views: Vec::new(),
        };
        if wrapped_before {
            engine.verify_pod_level()?;
        }

        let lists = [
            (List::Init, init_containers),
            (List::App, spec.containers.as_slice()),
        ];
        let mut names: Vec<&str> = Vec::new();
        for (list, containers) in lists {
            for (index, container) in containers.iter().enumerate() {
                if wrapped_before && list == List::Init && Some(index) == init_pos {
                    continue;
                }
                if names.contains(&container.name.as_str()) {
                    return Err(MutateError::DuplicateContainer {
                        pod: engine.label.clone(),
                        container: container.name.clone(),
                    });
                }
                names.push(&container.name);
                let original = match engine.record_of(&container.name) {
                    Some(record) => engine.verify_container(list, index, container, record)?,
                    None => container.clone(),
                };
                engine.views.push(View {
                    list,
                    index,
                    current: container,
                    original,
                    settings: ContainerSettings {
                        profile: settings.default_profile,
                        profile_origin: Origin::Flag("--default-profile"),
                        enforcement: settings.default_enforcement,
                        enforcement_origin: Origin::Flag("--default-enforcement"),
                        writable_paths: None,
                        readable_paths: None,
                        connect_ports: None,
                        allow_io_uring: None,
                    },
                });
            }
        }

        engine.annotations = Annotations::parse(
            annotations,
            context.namespace,
            context.namespace_annotations,
            &names,
        )
        .map_err(|source| MutateError::Annotation {
            pod: engine.label.clone(),
            error: Box::new(source),
        })?;
        for view in &mut engine.views {
            view.settings = engine
                .annotations
                .for_container(settings, &view.current.name);
        }
        Ok(engine)
    }

    fn record_of(&self, name: &str) -> Option<&WrappedContainer> {
        self.status.as_ref().and_then(|s| s.containers.get(name))
    }

    /// On a pass after a wrapping one, landgate-init and the volume must be
    /// there and the volume exactly landgate's: the status is user-writable,
    /// so a pod could arrive with a forged one and its own "launcher".
    /// landgate-init itself is rebuilt when it differs
    /// ([`Engine::rebuilt_init_container`]).
    fn verify_pod_level(&self) -> Result<(), MutateError> {
        let tampered = |field: &str, what: &str| MutateError::Tampered {
            pod: self.label.clone(),
            field: field.to_owned(),
            what: what.to_owned(),
        };
        if self.init_pos.is_none() {
            return Err(tampered(
                "spec.initContainers",
                "the landgate-init init container is missing",
            ));
        }
        match self.volume_pos {
            None => Err(tampered("spec.volumes", "the landgate volume is missing")),
            Some(pos) => {
                let found = &self.spec.volumes.as_deref().unwrap_or_default()[pos];
                if *found == launcher_volume() {
                    Ok(())
                } else {
                    Err(tampered(
                        &format!("spec.volumes[{pos}] ({VOLUME_NAME})"),
                        "it is not landgate's in-memory emptyDir",
                    ))
                }
            }
        }
    }

    /// landgate-init as this replica builds it, when the pod's differs in
    /// anything but what may legitimately differ on a later pass:
    /// - fields the API server defaults (`imagePullPolicy`,
    ///   `terminationMessage*`) and `resources` (LimitRanger fills in
    ///   defaults): none changes what `landgate install` does;
    /// - the ServiceAccount token mount, which the ServiceAccount admission
    ///   plugin adds to every container before it re-invokes landgate
    ///   ([`Engine::is_token_mount`]); it is kept in the rebuilt container.
    ///
    /// landgate-init writes the launcher that every other container runs
    /// through, and there is no "original" of it to recover, so a changed
    /// one is rebuilt from scratch rather than refused: a forged mount over
    /// its `/usr/local/bin`, an older launcher tag without later fixes, a
    /// wrapper list without `sh`, or the env and token mount a later
    /// webhook (EKS pod identity) adds to every init container all end as
    /// landgate's own container. Returns the rebuilt container and the
    /// fields that differed, for the warning.
    fn rebuilt_init_container(&self) -> Option<(Container, Vec<String>)> {
        let found = &self.spec.init_containers.as_deref().unwrap_or_default()[self.init_pos?];
        let expected = init_container(self.settings, self.spec);
        let differing = self.init_container_differences(found, &expected);
        if differing.is_empty() {
            return None;
        }
        let mut rebuilt = expected;
        let tokens = found
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| self.is_token_mount(m))
            .cloned();
        rebuilt
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .extend(tokens);
        Some((rebuilt, differing))
    }

    /// The fields of `found` that differ from `expected`, beyond those
    /// [`Engine::rebuilt_init_container`] lists as allowed to.
    fn init_container_differences(&self, found: &Container, expected: &Container) -> Vec<String> {
        let mut seen = found.clone();
        seen.image_pull_policy
            .clone_from(&expected.image_pull_policy);
        // The API server's default only: the kubelet bind-mounts a file at
        // any other path, which could cover the launcher it installs.
        if seen
            .termination_message_path
            .as_deref()
            .is_none_or(|p| p == DEFAULT_TERMINATION_MESSAGE_PATH)
        {
            seen.termination_message_path
                .clone_from(&expected.termination_message_path);
        }
        seen.termination_message_policy
            .clone_from(&expected.termination_message_policy);
        seen.resources.clone_from(&expected.resources);
        if let Some(mounts) = seen.volume_mounts.as_mut() {
            mounts.retain(|m| !self.is_token_mount(m));
        }
        if seen == *expected {
            return Vec::new();
        }
        // Name the fields for the refusal; only on this error path.
        let (Ok(serde_json::Value::Object(seen)), Ok(serde_json::Value::Object(expected))) =
            (serde_json::to_value(&seen), serde_json::to_value(expected))
        else {
            return vec!["fields".to_owned()];
        };
        let mut keys: Vec<&String> = seen.keys().chain(expected.keys()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .filter(|k| seen.get(*k) != expected.get(*k))
            .map(|k| match k.as_str() {
                "volumeMounts" => "volumeMounts (only the ServiceAccount token may be added)",
                other => other,
            })
            .map(str::to_owned)
            .collect()
    }

    /// The mount the ServiceAccount admission plugin adds: read-only, at or
    /// beneath the token directory, from a projected volume with a
    /// serviceAccountToken source or a (legacy token) secret volume. A
    /// mount there cannot change what `landgate install` runs or writes.
    fn is_token_mount(&self, mount: &VolumeMount) -> bool {
        let token_dir: AbsPath = SERVICE_ACCOUNT_TOKEN_DIR
            .parse()
            .unwrap_or_else(|err| unreachable!("constant path: {err}"));
        let at_token_dir =
            mount_path::normalise(&mount.mount_path).is_ok_and(|path| path.is_within(&token_dir));
        let plain = mount.read_only == Some(true)
            && mount.sub_path.as_deref().is_none_or(str::is_empty)
            && mount.sub_path_expr.as_deref().is_none_or(str::is_empty)
            && mount
                .mount_propagation
                .as_deref()
                .is_none_or(|p| p == "None");
        let token_volume = self
            .spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .is_some_and(|v| {
                v.secret.is_some()
                    || v.projected.as_ref().is_some_and(|p| {
                        p.sources
                            .iter()
                            .flatten()
                            .any(|s| s.service_account_token.is_some())
                    })
            });
        at_token_dir && plain && token_volume
    }

    /// Checks a container a previous pass wrapped and returns it as it was
    /// before.
    fn verify_container(
        &self,
        list: List,
        index: usize,
        container: &Container,
        record: &WrappedContainer,
    ) -> Result<Container, MutateError> {
        let tampered = |what: &str| MutateError::Tampered {
            pod: self.label.clone(),
            field: format!(
                "container {:?} (spec.{}[{index}])",
                container.name,
                list.json()
            ),
            what: what.to_owned(),
        };
        let command = container.command.as_deref().unwrap_or_default();
        if !has_exec_prefix(command) {
            return Err(tampered(
                "its command no longer starts with /landgate/landgate exec --",
            ));
        }
        let mounts = container.volume_mounts.as_deref().unwrap_or_default();
        if mounts.iter().filter(|m| **m == launcher_mount()).count() != 1 {
            return Err(tampered(
                "its read-only /landgate mount is missing or changed",
            ));
        }
        let env = container.env.as_deref().unwrap_or_default();
        let policies: Vec<&EnvVar> = env.iter().filter(|e| e.name == POLICY_ENV).collect();
        let [policy] = policies.as_slice() else {
            return Err(tampered("it no longer has exactly one LANDGATE_POLICY"));
        };
        let (Some(policy_json), None) = (&policy.value, &policy.value_from) else {
            return Err(tampered("its LANDGATE_POLICY is no longer a plain value"));
        };
        let path = last_path(env).map(|(_, e)| e);
        let path_value = match record.path {
            // Only a PATH from valueFrom is left alone; a status that says
            // so of a plain PATH would keep the wrappers off it.
            PathEdit::Untouched => match path {
                Some(var) if var.value_from.is_some() => None,
                _ => {
                    return Err(tampered(
                        "its PATH is recorded as coming from valueFrom, but it does not",
                    ));
                }
            },
            PathEdit::Added | PathEdit::Prefixed => {
                match path
                    .filter(|p| p.value_from.is_none())
                    .and_then(|p| p.value.as_deref())
                {
                    Some(value) if strip_path(value).len() < value.len() => Some(value),
                    _ => return Err(tampered("its PATH no longer starts with /landgate/bin")),
                }
            }
        };
        let hash = container_hash(
            &container.name,
            command,
            policy_json,
            path_value,
            record.path,
        );
        if hash != record.hash {
            return Err(tampered(
                "its command, LANDGATE_POLICY or PATH no longer match the hash in landgate.dev/status",
            ));
        }

        let mut original = container.clone();
        original.command = Some(command[EXEC_PREFIX.len()..].to_vec());
        for command in exec_commands_mut(&mut original) {
            if has_exec_prefix(command) {
                command.drain(..EXEC_PREFIX.len());
            }
        }
        if let Some(env) = original.env.as_mut() {
            env.retain(|e| e.name != POLICY_ENV && e.name != ACTIVE_ENV);
            if let Some((i, _)) = last_path(env) {
                match record.path {
                    PathEdit::Added => {
                        env.remove(i);
                    }
                    PathEdit::Prefixed => {
                        let value = env[i].value.take().unwrap_or_default();
                        env[i].value =
                            Some(strip_path(&value).to_owned()).filter(|v| !v.is_empty());
                    }
                    PathEdit::Untouched => {}
                }
            }
        }
        if let Some(mounts) = original.volume_mounts.as_mut() {
            mounts.retain(|m| *m != launcher_mount());
        }
        Ok(original)
    }

    fn decide_and_build(self) -> Result<Mutation, MutateError> {
        let mut warnings = Vec::new();
        if self
            .spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            warnings.push(
                "spec.ephemeralContainers are not wrapped: landgate handles pod creation, not the ephemeralcontainers subresource".to_owned(),
            );
        }
        match self.skip_reason(&mut warnings)? {
            Some(reason) => self.build_skip(reason, warnings),
            None => self.build_wrap(warnings),
        }
    }

    /// The first container that requires enforcement, if any.
    fn requiring(&self) -> Option<&View<'a>> {
        self.views
            .iter()
            .find(|v| v.settings.enforcement == Enforcement::Required)
    }

    fn unreachable(&self, why: String, fix: &'static str) -> Result<Option<String>, MutateError> {
        match self.requiring() {
            Some(view) => Err(MutateError::EnforcementUnreachable {
                pod: self.label.clone(),
                container: view.current.name.clone(),
                origin: view.settings.enforcement_origin.to_string(),
                why,
                fix,
            }),
            None => Ok(Some(why)),
        }
    }

    /// Why the pod is admitted unwrapped, if it is.
    fn skip_reason(&self, warnings: &mut Vec<String>) -> Result<Option<String>, MutateError> {
        if self.views.is_empty() {
            return Ok(Some("pod has no containers".into()));
        }
        let windows = self.spec.os.as_ref().is_some_and(|os| os.name == "windows")
            || self
                .spec
                .node_selector
                .as_ref()
                .and_then(|s| s.get("kubernetes.io/os"))
                .is_some_and(|os| os == "windows");
        if windows {
            return self.unreachable(
                "it is a Windows pod and Landlock is Linux-only".into(),
                "run it on Linux nodes, or allow best-effort enforcement for it",
            );
        }
        if let Some(origin) = self.annotations.opt_out() {
            return self.unreachable(
                format!("it opts out of landgate ({origin} = \"false\")"),
                "remove the opt-out, or allow best-effort enforcement for it",
            );
        }
        let unknown: Vec<&View> = self
            .views
            .iter()
            .filter(|v| v.original.command.as_ref().is_none_or(Vec::is_empty))
            .collect();
        let Some(first) = unknown.first() else {
            return Ok(None);
        };
        let what = if first.original.args.as_ref().is_some_and(|a| !a.is_empty()) {
            "only `args`, no `command`"
        } else {
            "neither `command` nor `args`"
        };
        let refuse = |because: String| MutateError::UnknownEntrypoint {
            pod: self.label.clone(),
            container: first.current.name.clone(),
            field: format!("{}.command", first.field()),
            what,
            because,
        };
        if let Some(view) = self.requiring() {
            return Err(refuse(format!(
                "container {:?} requires enforcement ({} = required) and a pod is never half-wrapped",
                view.current.name, view.settings.enforcement_origin
            )));
        }
        if self.settings.unknown_entrypoint == UnknownEntrypoint::Reject {
            return Err(refuse(
                "the webhook runs with --unknown-entrypoint=reject".into(),
            ));
        }
        let names: Vec<String> = unknown
            .iter()
            .map(|v| format!("{:?}", v.current.name))
            .collect();
        let reason = format!(
            "image entrypoint unknown for container {} (no `command`): the whole pod runs unsandboxed; set `command:` to sandbox it",
            names.join(", ")
        );
        warnings.push(reason.clone());
        Ok(Some(reason))
    }

    // === building ===

    fn build_wrap(self, mut warnings: Vec<String>) -> Result<Mutation, MutateError> {
        self.check_reserved()?;
        let mut ops = Ops::default();
        let init_containers_len = self.spec.init_containers.as_ref().map_or(0, Vec::len);

        // landgate-init first: containers wrapped below need the launcher.
        let init_index_shift: Box<dyn Fn(usize) -> usize> = match self.init_pos {
            Some(pos) if self.wrapped_before => {
                if pos != 0 {
                    ops.push(PatchOperation::Move(MoveOperation {
                        from: ptr(["spec", "initContainers"], [pos]),
                        path: ptr(["spec", "initContainers"], [0]),
                    }));
                }
                if let Some((rebuilt, differing)) = self.rebuilt_init_container() {
                    warnings.push(format!(
                        "{INIT_CONTAINER_NAME} differed from what landgate injects (its {}) and was rebuilt",
                        differing.join(", ")
                    ));
                    ops.push(PatchOperation::Replace(ReplaceOperation {
                        path: ptr(["spec", "initContainers"], [0]),
                        value: to_value(&rebuilt, &self.label)?,
                    }));
                }
                Box::new(move |i| if i < pos { i + 1 } else { i })
            }
            _ => {
                let init = to_value(&init_container(self.settings, self.spec), &self.label)?;
                if init_containers_len == 0 {
                    ops.add(
                        ptr(["spec", "initContainers"], []),
                        serde_json::json!([init]),
                    );
                } else {
                    ops.add(ptr(["spec", "initContainers"], [0]), init);
                }
                Box::new(|i| i + 1)
            }
        };
        if self.volume_pos.is_none() {
            let volume = to_value(&launcher_volume(), &self.label)?;
            if self.spec.volumes.as_ref().is_none_or(Vec::is_empty) {
                ops.add(ptr(["spec", "volumes"], []), serde_json::json!([volume]));
            } else {
                ops.add(ptr(["spec", "volumes", "-"], []), volume);
            }
        }

        let mut records = BTreeMap::new();
        let mut policies = BTreeMap::new();
        for view in &self.views {
            let index = match view.list {
                List::Init => init_index_shift(view.index),
                List::App => view.index,
            };
            let base = ptr(["spec", view.list.json()], [index]);
            let derived = derive::derive_policy(
                &view.settings,
                &view.original,
                self.spec.volumes.as_deref().unwrap_or_default(),
            );
            warnings.extend(derived.warnings);
            self.check_path_dirs(view, &derived.policy, &mut warnings)?;
            if let (Enforcement::Required, Some(origin)) =
                (view.settings.enforcement, &view.settings.allow_io_uring)
            {
                return Err(MutateError::IoUringUnderRequired {
                    pod: self.label.clone(),
                    container: view.current.name.clone(),
                    enforcement_origin: view.settings.enforcement_origin.to_string(),
                    io_uring_origin: origin.to_string(),
                });
            }
            let policy_json = kubelet_literal(&derived.policy.to_json());
            let record = match self.record_of(&view.current.name) {
                None => self.wrap_container(&mut ops, &base, view, &policy_json, &mut warnings)?,
                Some(record) => {
                    update_container(&mut ops, &base, view, record, &policy_json, &mut warnings)
                }
            };
            records.insert(view.current.name.clone(), record);
            policies.insert(view.current.name.clone(), derived.policy);
        }

        let status = Status {
            version: STATUS_VERSION,
            containers: records,
            skipped: None,
        };
        self.set_status(&mut ops, &status);
        let verdict = if ops.0.is_empty() {
            // Said on the first pass already.
            warnings.clear();
            Verdict::AlreadyWrapped
        } else {
            Verdict::Wrapped
        };
        self.finish(ops, verdict, policies, warnings)
    }

    /// Reports the directories on the container's PATH that sandboxed code
    /// can write, refusing them under `required`: until every exec runs
    /// through the launcher, a program planted there runs unsandboxed when
    /// `kubectl exec` names it. Judges the PATH the container really gets:
    /// its current one past `/landgate/bin` (what a forged status claims
    /// does not matter), else `--default-path`.
    fn check_path_dirs(
        &self,
        view: &View,
        policy: &Policy,
        warnings: &mut Vec<String>,
    ) -> Result<(), MutateError> {
        let name = &view.current.name;
        let required = view.settings.enforcement == Enforcement::Required;
        let refuse = |why: String| MutateError::UnsafePath {
            pod: self.label.clone(),
            container: name.clone(),
            why,
            origin: view.settings.enforcement_origin.to_string(),
        };
        let env = view.current.env.as_deref().unwrap_or_default();
        let path = match last_path(env) {
            Some((_, var)) if var.value_from.is_some() => {
                // The warning is wrap_container's.
                return match required {
                    true => Err(refuse(
                        "PATH comes from valueFrom: landgate can neither put /landgate/bin first nor see its directories".to_owned(),
                    )),
                    false => Ok(()),
                };
            }
            Some((_, var)) => strip_path(var.value.as_deref().unwrap_or_default()),
            None => &self.settings.default_path,
        };
        let Some(fs) = &policy.fs else {
            warnings.push(format!(
                "container {name:?}: profile ports-only sets no filesystem rules, so the directories on PATH ({path}) are as writable as file permissions allow; a program planted there runs unsandboxed when `kubectl exec` names it"
            ));
            return Ok(());
        };
        let dirs = derive::path_dirs(fs, &self.shared_writable(view.current), path);
        if required {
            if let Some(dir) = dirs.writable.first() {
                return Err(refuse(format!(
                    "PATH has {dir}, which sandboxed code can write"
                )));
            }
            if let Some(entry) = dirs.unjudged.first() {
                return Err(refuse(format!(
                    "PATH entry {entry:?} cannot be judged at admission (empty, relative, with `..` or a $(VAR) reference)"
                )));
            }
        }
        for dir in dirs.writable {
            warnings.push(format!(
                "container {name:?}: PATH directory {dir} is writable by sandboxed code; a program planted there runs unsandboxed when `kubectl exec` names it. Take it off PATH or mount it read-only in every container"
            ));
        }
        for entry in dirs.unjudged {
            warnings.push(format!(
                "container {name:?}: PATH entry {entry:?} cannot be judged at admission (empty, relative, with `..` or a $(VAR) reference); if it is writable, a program planted there runs unsandboxed when `kubectl exec` names it"
            ));
        }
        Ok(())
    }

    /// Where `c` mounts a volume that some container of the pod mounts
    /// writable (a shared emptyDir read-only here, written by a sidecar).
    fn shared_writable(&self, c: &Container) -> Vec<AbsPath> {
        let volumes = self.spec.volumes.as_deref().unwrap_or_default();
        let written: Vec<&str> = self
            .views
            .iter()
            .flat_map(|v| v.current.volume_mounts.iter().flatten())
            .filter(|m| derive::mounts_writable(m, volumes))
            .map(|m| m.name.as_str())
            .collect();
        c.volume_mounts
            .iter()
            .flatten()
            .filter(|m| written.contains(&m.name.as_str()))
            .filter_map(|m| mount_path::normalise(&m.mount_path).ok())
            .collect()
    }

    /// Names and volume paths landgate needs must be free (on a later pass,
    /// landgate-init, the volume and the mounts of wrapped containers are
    /// landgate's own, verified in [`Engine::read`]). A container that
    /// mounts the launcher volume itself, or anything at or beneath
    /// `/landgate`, could replace the launcher that every other container,
    /// probe and hook runs through.
    fn check_reserved(&self) -> Result<(), MutateError> {
        let reserved = |field: String, what: String, fix: &'static str| MutateError::Reserved {
            pod: self.label.clone(),
            field,
            what,
            fix,
        };
        if let Some(pos) = self.init_pos.filter(|_| !self.wrapped_before) {
            return Err(reserved(
                format!("spec.initContainers[{pos}]"),
                format!("is named {INIT_CONTAINER_NAME:?}"),
                "rename that init container",
            ));
        }
        // Any other container of that name (an app container, or one a later
        // webhook added on reinvocation): names are unique across the lists.
        if let Some(view) = self
            .views
            .iter()
            .find(|v| v.current.name == INIT_CONTAINER_NAME)
        {
            return Err(reserved(
                view.field(),
                format!("is named {INIT_CONTAINER_NAME:?}"),
                "rename that container",
            ));
        }
        if let Some(pos) = self.volume_pos.filter(|_| !self.wrapped_before) {
            return Err(reserved(
                format!("spec.volumes[{pos}]"),
                format!("is named {VOLUME_NAME:?}"),
                "rename the volume (and its volumeMounts)",
            ));
        }
        let volumes = self.spec.volumes.as_deref().unwrap_or_default();
        let mount_error = |error| MutateError::Mount {
            pod: self.label.clone(),
            error: Box::new(error),
        };
        for view in &self.views {
            let recorded = self.record_of(&view.current.name).is_some();
            let field = view.field();
            mount_path::check(
                Mounts::of_container(&field, view.current),
                volumes,
                |m| recorded && *m == launcher_mount(),
                true,
            )
            .map_err(mount_error)?;
        }
        for (i, e) in self.spec.ephemeral_containers.iter().flatten().enumerate() {
            let field = format!("spec.ephemeralContainers[{i}]");
            check_container_mounts(&self.label, &field, e, self.spec)?;
        }
        Ok(())
    }

    /// First wrap of a container; returns its status record.
    fn wrap_container(
        &self,
        ops: &mut Ops,
        base: &PointerBuf,
        view: &View,
        policy_json: &str,
        warnings: &mut Vec<String>,
    ) -> Result<WrappedContainer, MutateError> {
        let c = view.current;
        let name = &c.name;
        let kept = strip_user_env(
            ops,
            base,
            c,
            |_| false,
            "the LANDGATE_* variables are landgate's; LANDGATE_POLICY is derived from the pod",
            warnings,
        );

        let mut appended: Vec<EnvVar> = Vec::with_capacity(2);
        let (edit, path_value) = match last_path(&kept) {
            Some((i, var)) if var.value_from.is_none() => {
                let value = prefixed_path(var.value.as_deref().unwrap_or_default());
                ops.add(
                    at(base, ["env"], [i]).with("value"),
                    serde_json::Value::String(value.clone()),
                );
                (PathEdit::Prefixed, Some(value))
            }
            Some(_) => {
                warnings.push(format!(
                    "container {name:?}: PATH comes from valueFrom and cannot be prefixed with /landgate/bin, so programs started by name (kubectl exec … -- sh) are not sandboxed; set PATH as a plain value"
                ));
                (PathEdit::Untouched, None)
            }
            None => {
                // The spec's PATH replaces the image's ENV PATH, which is
                // unknown until images are resolved from their registry:
                // say so, since a program found only there (a JDK's
                // /opt/java/openjdk/bin) would no longer be found.
                let value = prefixed_path(&kubelet_literal(&self.settings.default_path));
                let also = if c.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
                    " and any PATH from envFrom"
                } else {
                    ""
                };
                warnings.push(format!(
                    "container {name:?}: PATH set to {value}, replacing the image's own PATH{also} (unknown at admission); if the image needs other directories on PATH, set PATH under env"
                ));
                appended.push(env_var("PATH", &value));
                (PathEdit::Added, Some(value))
            }
        };
        appended.push(env_var(POLICY_ENV, policy_json));
        appended.push(active_marker());
        if kept.is_empty() {
            ops.add(at(base, ["env"], []), to_value(&appended, &self.label)?);
        } else {
            for var in &appended {
                ops.add(at(base, ["env", "-"], []), to_value(var, &self.label)?);
            }
        }

        let command = wrap_command(view.original.command.as_deref().unwrap_or_default());
        ops.add(at(base, ["command"], []), serde_json::json!(command));
        prefix_exec_handlers(ops, base, c);
        if c.volume_mounts.as_ref().is_none_or(Vec::is_empty) {
            ops.add(
                at(base, ["volumeMounts"], []),
                serde_json::json!([to_value(&launcher_mount(), &self.label)?]),
            );
        } else {
            ops.add(
                at(base, ["volumeMounts", "-"], []),
                to_value(&launcher_mount(), &self.label)?,
            );
        }

        Ok(WrappedContainer {
            hash: container_hash(name, &command, policy_json, path_value.as_deref(), edit),
            path: edit,
        })
    }

    fn build_skip(self, reason: String, warnings: Vec<String>) -> Result<Mutation, MutateError> {
        let mut ops = Ops::default();
        if self.wrapped_before {
            // Undo the previous pass: a pod is never half-wrapped.
            for view in &self.views {
                if let Some(record) = self.record_of(&view.current.name) {
                    let base = ptr(["spec", view.list.json()], [view.index]);
                    unwrap_container(&mut ops, &base, view.current, record, &view.original);
                }
            }
            let init_len = self.spec.init_containers.as_ref().map_or(0, Vec::len);
            if let Some(pos) = self.init_pos {
                remove_item(&mut ops, ptr(["spec", "initContainers"], []), pos, init_len);
            }
            let volumes_len = self.spec.volumes.as_ref().map_or(0, Vec::len);
            if let Some(pos) = self.volume_pos {
                remove_item(&mut ops, ptr(["spec", "volumes"], []), pos, volumes_len);
            }
        }
        let status = Status {
            version: STATUS_VERSION,
            containers: BTreeMap::new(),
            skipped: Some(reason.clone()),
        };
        self.set_status(&mut ops, &status);
        self.finish(ops, Verdict::Skipped(reason), BTreeMap::new(), warnings)
    }

    fn set_status(&self, ops: &mut Ops, status: &Status) {
        if self.status.as_ref() == Some(status) {
            return;
        }
        let value = serde_json::Value::String(status.to_annotation());
        if self
            .pod
            .metadata
            .annotations
            .as_ref()
            .is_none_or(BTreeMap::is_empty)
        {
            ops.add(
                ptr(["metadata", "annotations"], []),
                serde_json::json!({ derive::STATUS: value }),
            );
        } else {
            ops.add(ptr(["metadata", "annotations", derive::STATUS], []), value);
        }
    }

    /// Applies the patch to the pod's JSON, so that the reported pod is by
    /// construction what the API server gets.
    fn finish(
        &self,
        ops: Ops,
        verdict: Verdict,
        policies: BTreeMap<String, Policy>,
        warnings: Vec<String>,
    ) -> Result<Mutation, MutateError> {
        let internal = |message: String| MutateError::Internal {
            pod: self.label.clone(),
            message,
        };
        let patch = json_patch::Patch(ops.0);
        let pod = if patch.0.is_empty() {
            self.pod.clone()
        } else {
            let mut doc = to_value(self.pod, &self.label)?;
            json_patch::patch(&mut doc, &patch).map_err(|e| internal(e.to_string()))?;
            serde_json::from_value(doc).map_err(|e| internal(e.to_string()))?
        };
        Ok(Mutation {
            verdict,
            patch,
            pod,
            policies,
            warnings: warnings
                .into_iter()
                .map(|w| format!("landgate: {w}"))
                .collect(),
        })
    }
}

/// A later pass over a wrapped container: new policy if the spec changed,
/// exec handlers and LANDGATE_* env added since handled.
fn update_container(
    ops: &mut Ops,
    base: &PointerBuf,
    view: &View,
    record: &WrappedContainer,
    policy_json: &str,
    warnings: &mut Vec<String>,
) -> WrappedContainer {
    let c = view.current;
    // The LANDGATE_* variables a previous pass wrote: LANDGATE_POLICY and
    // one empty marker (a later webhook's LANDGATE_ACTIVE=1, or a second
    // copy, is not landgate's).
    let env = c.env.as_deref().unwrap_or_default();
    let marker = env.iter().rposition(is_active_marker);
    let kept = strip_user_env(
        ops,
        base,
        c,
        |var| {
            var.name == POLICY_ENV
                || (is_active_marker(var) && marker.is_some_and(|i| std::ptr::eq(var, &env[i])))
        },
        "the LANDGATE_* variables are landgate's",
        warnings,
    );
    if !kept.iter().any(|v| is_active_marker(v)) {
        // Pods wrapped before the marker existed, or whose marker a later
        // webhook replaced.
        let marker = serde_json::json!({ "name": ACTIVE_ENV });
        if kept.is_empty() {
            ops.add(at(base, ["env"], []), serde_json::json!([marker]));
        } else {
            ops.add(at(base, ["env", "-"], []), marker);
        }
    }
    if let Some(i) = kept.iter().position(|v| v.name == POLICY_ENV)
        && kept[i].value.as_deref() != Some(policy_json)
    {
        ops.add(
            at(base, ["env"], [i]).with("value"),
            serde_json::Value::String(policy_json.to_owned()),
        );
    }
    prefix_exec_handlers(ops, base, c);
    let command = c.command.as_deref().unwrap_or_default();
    let path_value = match record.path {
        PathEdit::Untouched => None,
        _ => last_path(&kept).and_then(|(_, v)| v.value.as_deref()),
    };
    WrappedContainer {
        hash: container_hash(&c.name, command, policy_json, path_value, record.path),
        path: record.path,
    }
}

/// Removes the container's `LANDGATE_*` env that `landgate_owned` does not
/// claim, warning with `why`, and returns the env that stays (indices into
/// it are indices after the removals). User-supplied LANDGATE_* cannot be
/// trusted: LANDGATE_ACTIVE=1 would make wrappers skip the sandbox.
fn strip_user_env<'c>(
    ops: &mut Ops,
    base: &PointerBuf,
    c: &'c Container,
    landgate_owned: impl Fn(&EnvVar) -> bool,
    why: &str,
    warnings: &mut Vec<String>,
) -> Vec<&'c EnvVar> {
    let env = c.env.as_deref().unwrap_or_default();
    let strip = |var: &EnvVar| var.name.starts_with(ENV_PREFIX) && !landgate_owned(var);
    let mut stripped = Vec::new();
    // Highest index first, so that earlier removals do not shift later ones.
    for (i, var) in env.iter().enumerate().rev() {
        if strip(var) {
            ops.push(PatchOperation::Remove(RemoveOperation {
                path: at(base, ["env"], [i]),
            }));
            stripped.push(var.name.as_str());
        }
    }
    if !stripped.is_empty() {
        stripped.reverse();
        warnings.push(format!(
            "container {:?}: removed env {} ({why})",
            c.name,
            stripped.join(", ")
        ));
    }
    env.iter().filter(|var| !strip(var)).collect()
}

/// Reverts what a previous pass did to a container.
fn unwrap_container(
    ops: &mut Ops,
    base: &PointerBuf,
    current: &Container,
    record: &WrappedContainer,
    original: &Container,
) {
    ops.add(
        at(base, ["command"], []),
        serde_json::json!(original.command.as_deref().unwrap_or_default()),
    );
    for (field, command) in exec_handlers(current) {
        if has_exec_prefix(command) {
            ops.add(
                exec_command_ptr(base, field),
                serde_json::json!(command[EXEC_PREFIX.len()..]),
            );
        }
    }
    let env = current.env.as_deref().unwrap_or_default();
    let path = last_path(env);
    let mut removals: Vec<usize> = env
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name == POLICY_ENV || e.name == ACTIVE_ENV)
        .map(|(i, _)| i)
        .collect();
    if let Some((i, var)) = path {
        match record.path {
            PathEdit::Added => removals.push(i),
            PathEdit::Prefixed => {
                let path = at(base, ["env"], [i]).with("value");
                match strip_path(var.value.as_deref().unwrap_or_default()) {
                    // An empty value is no value: the API server omits it.
                    "" => ops.push(PatchOperation::Remove(RemoveOperation { path })),
                    value => ops.add(path, serde_json::Value::String(value.to_owned())),
                }
            }
            PathEdit::Untouched => {}
        }
    }
    let mounts = current.volume_mounts.as_deref().unwrap_or_default();
    let mount_removals: Vec<usize> = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| **m == launcher_mount())
        .map(|(i, _)| i)
        .collect();
    removals.sort_unstable();
    remove_items(ops, at(base, ["env"], []), &removals, env.len());
    remove_items(
        ops,
        at(base, ["volumeMounts"], []),
        &mount_removals,
        mounts.len(),
    );
}

/// Removes `indices` (ascending) from the list at `list` of length `len`;
/// the whole field when nothing would be left, as if it had never been set.
fn remove_items(ops: &mut Ops, list: PointerBuf, indices: &[usize], len: usize) {
    if indices.is_empty() {
        return;
    }
    if indices.len() == len {
        ops.push(PatchOperation::Remove(RemoveOperation { path: list }));
        return;
    }
    for &i in indices.iter().rev() {
        ops.push(PatchOperation::Remove(RemoveOperation {
            path: list.clone().with(&i.to_string()),
        }));
    }
}

fn remove_item(ops: &mut Ops, list: PointerBuf, index: usize, len: usize) {
    remove_items(ops, list, &[index], len);
}

// === what landgate injects ===

/// The `landgate-init` init container. Its securityContext passes the
/// PodSecurity "restricted" standard: an injected container must never be
/// the reason a pod is refused.
pub fn init_container(settings: &Settings, spec: &PodSpec) -> Container {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    let pod_runs_as_root = spec.security_context.as_ref().and_then(|sc| sc.run_as_user) == Some(0);
    Container {
        name: INIT_CONTAINER_NAME.to_owned(),
        image: Some(settings.launcher_image.clone()),
        command: Some(vec![
            IMAGE_LAUNCHER.to_owned(),
            "install".to_owned(),
            MOUNT_PATH.to_owned(),
            "--wrappers".to_owned(),
            settings.wrappers.join(","),
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: VOLUME_NAME.to_owned(),
            mount_path: MOUNT_PATH.to_owned(),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("10m", "16Mi")),
            limits: Some(quantities("100m", "32Mi")),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Default::default()
            }),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: pod_runs_as_root.then_some(LAUNCHER_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `landgate` volume.
pub fn launcher_volume() -> Volume {
    Volume {
        name: VOLUME_NAME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_owned()),
            size_limit: Some(Quantity(VOLUME_SIZE_LIMIT.to_owned())),
        }),
        ..Default::default()
    }
}

/// The read-only mount of the launcher volume in wrapped containers.
pub fn launcher_mount() -> VolumeMount {
    VolumeMount {
        name: VOLUME_NAME.to_owned(),
        mount_path: MOUNT_PATH.to_owned(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// `/landgate/landgate exec -- <command…>`.
pub fn wrap_command(command: &[String]) -> Vec<String> {
    EXEC_PREFIX
        .iter()
        .map(|s| (*s).to_owned())
        .chain(command.iter().cloned())
        .collect()
}

fn has_exec_prefix(command: &[String]) -> bool {
    command.len() > EXEC_PREFIX.len() && command.iter().zip(EXEC_PREFIX).all(|(a, b)| a == b)
}

fn prefixed_path(path: &str) -> String {
    if path.is_empty() {
        WRAPPER_DIR.to_owned()
    } else {
        format!("{WRAPPER_DIR}:{path}")
    }
}

/// `path` without landgate's `/landgate/bin` entry in front (whole entries
/// only: `/landgate/binx` is someone else's).
fn strip_path(path: &str) -> &str {
    match path.strip_prefix(WRAPPER_DIR) {
        Some("") => "",
        Some(rest) => rest.strip_prefix(':').unwrap_or(path),
        None => path,
    }
}

/// `value` written so that the kubelet passes it on unchanged: it expands
/// `$(VAR)` in env values and turns `$$` into `$`, so the policy that runs
/// would otherwise differ from the one previewed and hashed (a writable
/// path `/data/$(HOME)`).
fn kubelet_literal(value: &str) -> String {
    value.replace('$', "$$")
}

/// `LANDGATE_ACTIVE` set to nothing. Written without a value, as the API
/// server stores an empty one.
fn active_marker() -> EnvVar {
    EnvVar {
        name: ACTIVE_ENV.to_owned(),
        value: None,
        value_from: None,
    }
}

fn is_active_marker(var: &EnvVar) -> bool {
    var.name == ACTIVE_ENV
        && var.value_from.is_none()
        && var.value.as_deref().unwrap_or_default().is_empty()
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

/// The PATH that wins (the kubelet takes the last duplicate), in a
/// container's env or in the part of it landgate keeps.
fn last_path<E: Borrow<EnvVar>>(env: &[E]) -> Option<(usize, &EnvVar)> {
    env.iter()
        .map(Borrow::borrow)
        .enumerate()
        .rev()
        .find(|(_, e)| e.name == "PATH")
}

/// The container's exec probes and exec lifecycle hooks, with the JSON path
/// of their handler: the kubelet runs these inside the container without
/// the entrypoint, so unwrapped they would escape the sandbox.
/// The same handlers as [`exec_handlers`], mutably (Rust cannot share one
/// walk between the two borrows).
fn exec_commands_mut(c: &mut Container) -> Vec<&mut Vec<String>> {
    let lifecycle = c.lifecycle.as_mut();
    let (post_start, pre_stop) = match lifecycle {
        Some(l) => (l.post_start.as_mut(), l.pre_stop.as_mut()),
        None => (None, None),
    };
    let probes = [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|p| p.exec.as_mut());
    let hooks = [post_start, pre_stop]
        .into_iter()
        .flatten()
        .filter_map(|h| h.exec.as_mut());
    probes
        .chain(hooks)
        .filter_map(|e| e.command.as_mut())
        .collect()
}

fn exec_handlers(c: &Container) -> Vec<([&'static str; 2], &[String])> {
    let mut found = Vec::new();
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        if let Some(command) = probe
            .as_ref()
            .and_then(|p| p.exec.as_ref())
            .and_then(|e| e.command.as_deref())
            .filter(|c| !c.is_empty())
        {
            // The second token is never used for probes.
            found.push(([field, ""], command));
        }
    }
    if let Some(lifecycle) = &c.lifecycle {
        for (field, handler) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            if let Some(command) = handler
                .as_ref()
                .and_then(|h| h.exec.as_ref())
                .and_then(|e| e.command.as_deref())
                .filter(|c| !c.is_empty())
            {
                found.push((["lifecycle", field], command));
            }
        }
    }
    found
}

/// The `command` of the exec handler at `field` (from [`exec_handlers`]).
fn exec_command_ptr(base: &PointerBuf, field: [&str; 2]) -> PointerBuf {
    at(base, field, []).with("exec").with("command")
}

fn prefix_exec_handlers(ops: &mut Ops, base: &PointerBuf, c: &Container) {
    for (field, command) in exec_handlers(c) {
        if !has_exec_prefix(command) {
            ops.add(
                exec_command_ptr(base, field),
                serde_json::json!(wrap_command(command)),
            );
        }
    }
}

/// Reads a `landgate.dev/status` annotation value; the error says what is wrong.
pub fn parse_status(raw: &str) -> Result<Status, String> {
    let status: Status =
        serde_json::from_str(raw).map_err(|e| format!("is not valid ({e}): {raw:?}"))?;
    if status.version != STATUS_VERSION {
        return Err(format!(
            "has version {}, this landgate writes version {STATUS_VERSION}",
            status.version
        ));
    }
    Ok(status)
}

// === JSON patch helpers ===

#[derive(Default)]
struct Ops(Vec<PatchOperation>);

impl Ops {
    fn push(&mut self, op: PatchOperation) {
        self.0.push(op);
    }

    /// `add` sets an object member whether or not it exists, and inserts
    /// into an array.
    fn add(&mut self, path: PointerBuf, value: serde_json::Value) {
        self.0
            .push(PatchOperation::Add(AddOperation { path, value }));
    }
}

trait With {
    fn with(self, token: &str) -> Self;
}

impl With for PointerBuf {
    fn with(mut self, token: &str) -> Self {
        self.push_back(token);
        self
    }
}

/// A pointer from string tokens then index tokens (escaped by jsonptr: `/`
/// and `~` in annotation keys become `~1` and `~0`).
fn ptr<const N: usize, const M: usize>(names: [&str; N], indices: [usize; M]) -> PointerBuf {
    let mut p = PointerBuf::from_tokens(names);
    for i in indices {
        p.push_back(Token::from(i));
    }
    p
}

/// `base` + names (empty names skipped) + indices.
fn at<const N: usize, const M: usize>(
    base: &PointerBuf,
    names: [&str; N],
    indices: [usize; M],
) -> PointerBuf {
    let mut p = base.clone();
    for name in names.into_iter().filter(|n| !n.is_empty()) {
        p.push_back(name);
    }
    for i in indices {
        p.push_back(Token::from(i));
    }
    p
}

fn to_value<T: Serialize + ?Sized>(value: &T, pod: &str) -> Result<serde_json::Value, MutateError> {
    serde_json::to_value(value).map_err(|e| MutateError::Internal {
        pod: pod.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::{CONNECT_PORTS, ENFORCEMENT, INJECT, PROFILE};
    use landgate_policy::PortSet;
    use serde_json::{Value, json};

    fn pod(value: Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn web_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"containers": [{
                "name": "web", "image": "nginx:1.27",
                "command": ["nginx"], "args": ["-g", "daemon off;"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "volumeMounts": [{"name": "cache", "mountPath": "/var/cache/nginx"}]
            }],
            "volumes": [{"name": "cache", "emptyDir": {}}]}
        })
    }

    fn run_with(settings: &Settings, ns: &BTreeMap<String, String>, p: &Pod) -> Mutation {
        let m = mutate_pod(
            settings,
            PodContext {
                namespace: "shop",
                namespace_annotations: ns,
            },
            p,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // The patch applies to the pod and gives exactly the reported pod.
        let mut doc = serde_json::to_value(p).unwrap();
        json_patch::patch(&mut doc, &m.patch).unwrap();
        assert_eq!(doc, serde_json::to_value(&m.pod).unwrap());
        m
    }

    fn run(p: &Pod) -> Mutation {
        run_with(&Settings::default(), &BTreeMap::new(), p)
    }

    fn refuse_with(settings: &Settings, ns: &BTreeMap<String, String>, p: &Pod) -> String {
        mutate_pod(
            settings,
            PodContext {
                namespace: "shop",
                namespace_annotations: ns,
            },
            p,
        )
        .map(|m| m.verdict)
        .unwrap_err()
        .to_string()
    }

    fn refuse(p: &Pod) -> String {
        refuse_with(&Settings::default(), &BTreeMap::new(), p)
    }

    fn json_of(p: &Pod) -> Value {
        serde_json::to_value(p).unwrap()
    }

    /// Runs a pod whose landgate-init was changed: it comes back rebuilt as
    /// landgate builds it, with a warning.
    fn rebuilt_init(v: Value) -> Value {
        let m = run(&pod(v));
        assert_eq!(m.verdict, Verdict::Wrapped);
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("landgate-init differed")),
            "{:?}",
            m.warnings
        );
        let out = json_of(&m.pod);
        let spec: PodSpec = serde_json::from_value(out["spec"].clone()).unwrap();
        assert_eq!(
            out["spec"]["initContainers"][0],
            serde_json::to_value(init_container(&Settings::default(), &spec)).unwrap()
        );
        out
    }

    fn env<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
        c["env"]
            .as_array()?
            .iter()
            .rev()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
    }

    fn status(p: &Value) -> Status {
        serde_json::from_str(
            p["metadata"]["annotations"][derive::STATUS]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn wraps_a_pod() {
        let m = run(&pod(web_pod()));
        assert_eq!(m.verdict, Verdict::Wrapped);
        assert_eq!(
            m.warnings,
            [format!(
                "landgate: container \"web\": PATH set to /landgate/bin:{}, replacing the image's own PATH (unknown at admission); if the image needs other directories on PATH, set PATH under env",
                crate::settings::Settings::default().default_path
            )]
        );
        let p = json_of(&m.pod);
        let init = &p["spec"]["initContainers"][0];
        assert_eq!(init["name"], INIT_CONTAINER_NAME);
        assert_eq!(init["image"], crate::settings::DEFAULT_LAUNCHER_IMAGE);
        assert_eq!(
            init["command"],
            json!([
                IMAGE_LAUNCHER,
                "install",
                "/landgate",
                "--wrappers",
                "sh,bash,ash,dash,zsh,busybox,python,python3,perl,ruby,node,php,tar,curl,wget,nc"
            ])
        );
        assert_eq!(
            init["volumeMounts"],
            json!([{"name": "landgate", "mountPath": "/landgate"}])
        );
        assert_eq!(
            p["spec"]["volumes"][1],
            json!({"name": "landgate", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}})
        );
        let web = &p["spec"]["containers"][0];
        assert_eq!(
            web["command"],
            json!(["/landgate/landgate", "exec", "--", "nginx"])
        );
        assert_eq!(web["args"], json!(["-g", "daemon off;"]));
        assert_eq!(
            web["volumeMounts"][1],
            json!({"name": "landgate", "mountPath": "/landgate", "readOnly": true})
        );
        assert_eq!(
            env(web, "PATH"),
            Some("/landgate/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        );
        let policy = Policy::from_json(env(web, POLICY_ENV).unwrap()).unwrap();
        assert_eq!(policy, m.policies["web"]);
        assert_eq!(policy.net.bind, Some(PortSet::from([8080])));
        let st = status(&p);
        assert_eq!(st.version, 1);
        assert_eq!(st.containers["web"].path, PathEdit::Added);
        assert!(st.containers["web"].hash.starts_with("sha256:"));
        // Annotation keys are escaped in pointers.
        assert!(
            m.patch
                .0
                .iter()
                .any(|op| op.path().as_str() == "/metadata/annotations")
        );
    }

    #[test]
    fn status_key_is_escaped_when_annotations_exist() {
        let mut v = web_pod();
        v["metadata"]["annotations"] = json!({"team": "shop"});
        let m = run(&pod(v));
        assert!(
            m.patch
                .0
                .iter()
                .any(|op| op.path().as_str() == "/metadata/annotations/landgate.dev~1status"),
            "{:?}",
            m.patch
        );
    }

    #[test]
    fn second_pass_is_empty() {
        let first = run(&pod(web_pod()));
        let second = run(&first.pod);
        assert_eq!(second.verdict, Verdict::AlreadyWrapped);
        assert!(second.patch.0.is_empty());
        assert_eq!(second.policies, first.policies);
    }

    #[test]
    fn init_container_passes_restricted() {
        let m = run(&pod(web_pod()));
        let init = &json_of(&m.pod)["spec"]["initContainers"][0];
        assert_eq!(
            init["securityContext"],
            json!({
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "privileged": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"}
            })
        );
        assert_eq!(
            init["resources"],
            json!({"limits": {"cpu": "100m", "memory": "32Mi"},
                   "requests": {"cpu": "10m", "memory": "16Mi"}})
        );
        let mut root = web_pod();
        root["spec"]["securityContext"] = json!({"runAsUser": 0});
        let m = run(&pod(root));
        let init = &json_of(&m.pod)["spec"]["initContainers"][0];
        assert_eq!(init["securityContext"]["runAsUser"], json!(LAUNCHER_UID));
    }

    #[test]
    fn init_containers_and_native_sidecars() {
        let mut v = web_pod();
        v["spec"]["initContainers"] = json!([
            {"name": "migrate", "image": "app", "command": ["/app/migrate"]},
            {"name": "proxy", "image": "envoy", "command": ["envoy"], "restartPolicy": "Always",
             "ports": [{"containerPort": 15001}]}
        ]);
        let m = run(&pod(v));
        let p = json_of(&m.pod);
        let names: Vec<&str> = p["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["landgate-init", "migrate", "proxy"]);
        for (i, cmd) in [(1, "/app/migrate"), (2, "envoy")] {
            assert_eq!(
                p["spec"]["initContainers"][i]["command"],
                json!([LAUNCHER, "exec", "--", cmd])
            );
        }
        assert_eq!(p["spec"]["initContainers"][2]["restartPolicy"], "Always");
        assert_eq!(m.policies["proxy"].net.bind, Some(PortSet::from([15001])));
        assert_eq!(m.policies.len(), 3);
        assert!(run(&m.pod).patch.0.is_empty());
    }

    #[test]
    fn exec_probes_and_hooks_are_wrapped() {
        let mut v = web_pod();
        v["spec"]["containers"][0]["livenessProbe"] =
            json!({"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 5});
        v["spec"]["containers"][0]["readinessProbe"] =
            json!({"httpGet": {"path": "/", "port": 8080}});
        v["spec"]["containers"][0]["startupProbe"] = json!({"exec": {"command": ["true"]}});
        v["spec"]["containers"][0]["lifecycle"] = json!({
            "postStart": {"exec": {"command": ["sh", "-c", "echo hi"]}},
            "preStop": {"sleep": {"seconds": 5}}
        });
        let m = run(&pod(v));
        let web = &json_of(&m.pod)["spec"]["containers"][0];
        assert_eq!(
            web["livenessProbe"]["exec"]["command"],
            json!([LAUNCHER, "exec", "--", "cat", "/tmp/healthy"])
        );
        assert_eq!(web["livenessProbe"]["periodSeconds"], 5);
        assert_eq!(
            web["readinessProbe"],
            json!({"httpGet": {"path": "/", "port": 8080}})
        );
        assert_eq!(
            web["startupProbe"]["exec"]["command"],
            json!([LAUNCHER, "exec", "--", "true"])
        );
        assert_eq!(
            web["lifecycle"]["postStart"]["exec"]["command"],
            json!([LAUNCHER, "exec", "--", "sh", "-c", "echo hi"])
        );
        assert_eq!(
            web["lifecycle"]["preStop"],
            json!({"sleep": {"seconds": 5}})
        );
        assert!(run(&m.pod).patch.0.is_empty());
    }

    #[test]
    fn path_prefixed_kept_or_added() {
        let mut v = web_pod();
        v["spec"]["containers"][0]["env"] = json!([
            {"name": "PATH", "value": "/opt/app/bin:/usr/bin"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}
        ]);
        let m = run(&pod(v.clone()));
        let web = &json_of(&m.pod)["spec"]["containers"][0];
        assert_eq!(
            env(web, "PATH"),
            Some("/landgate/bin:/opt/app/bin:/usr/bin")
        );
        // valueFrom entries are kept as they are.
        assert_eq!(
            web["env"][1],
            json!({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}})
        );
        assert_eq!(
            status(&json_of(&m.pod)).containers["web"].path,
            PathEdit::Prefixed
        );
        assert!(run(&m.pod).patch.0.is_empty());

        v["spec"]["containers"][0]["env"] =
            json!([{"name": "PATH", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "p"}}}]);
        let m = run(&pod(v));
        assert!(
            m.warnings[0].contains("PATH comes from valueFrom"),
            "{:?}",
            m.warnings
        );
        let web = &json_of(&m.pod)["spec"]["containers"][0];
        assert_eq!(web["env"][0]["valueFrom"]["configMapKeyRef"]["key"], "p");
        assert!(run(&m.pod).patch.0.is_empty());
    }

    #[test]
    fn envfrom_path_override_is_reported() {
        let mut v = web_pod();
        v["spec"]["containers"][0]["envFrom"] = json!([{"configMapRef": {"name": "env"}}]);
        let m = run(&pod(v));
        assert!(
            m.warnings[0].contains("replacing the image's own PATH and any PATH from envFrom"),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn user_landgate_env_is_stripped_with_a_warning() {
        let mut v = web_pod();
        v["spec"]["containers"][0]["env"] = json!([
            {"name": "LANDGATE_POLICY", "value": "{\"v\":1}"},
            {"name": "A", "value": "1"},
            {"name": "LANDGATE_ACTIVE", "value": "1"}
        ]);
        let m = run(&pod(v));
        assert_eq!(
            m.warnings[0],
            "landgate: container \"web\": removed env LANDGATE_POLICY, LANDGATE_ACTIVE (the LANDGATE_* variables are landgate's; LANDGATE_POLICY is derived from the pod)"
        );
        assert!(m.warnings[1].contains("PATH set to /landgate/bin:"));
        let web = &json_of(&m.pod)["spec"]["containers"][0];
        let names: Vec<&str> = web["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["A", "PATH", "LANDGATE_POLICY", "LANDGATE_ACTIVE"]);
        // Explicitly empty, so that an image's ENV cannot pre-set it.
        assert_eq!(web["env"][3], json!({"name": "LANDGATE_ACTIVE"}));
        assert_eq!(
            Policy::from_json(env(web, POLICY_ENV).unwrap()).unwrap(),
            m.policies["web"]
        );
        let second = run(&m.pod);
        assert!(second.patch.0.is_empty());
        assert!(second.warnings.is_empty());
    }

    #[test]
    fn all_env_landgate_leaves_a_fresh_list() {
        let mut v = web_pod();
        v["spec"]["containers"][0]["env"] = json!([{"name": "LANDGATE_X", "value": "1"}]);
        let m = run(&pod(v));
        let web = &json_of(&m.pod)["spec"]["containers"][0];
        assert_eq!(web["env"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn a_later_active_marker_is_reset_on_reinvocation() {
        let wrapped = json_of(&run(&pod(web_pod())).pod);
        let mut v = wrapped.clone();
        let envs = v["spec"]["containers"][0]["env"].as_array_mut().unwrap();
        let marker = envs.iter_mut().find(|e| e["name"] == ACTIVE_ENV).unwrap();
        marker["value"] = json!("1");
        let m = run(&pod(v));
        assert_eq!(json_of(&m.pod), wrapped);
        assert!(
            m.warnings[0].contains("removed env LANDGATE_ACTIVE"),
            "{:?}",
            m.warnings
        );
    }

    fn args_only_pod() -> Value {
        let mut v = web_pod();
        v["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "istio-proxy", "image": "proxyv2", "args": ["proxy", "sidecar"]}));
        v
    }

    #[test]
    fn unknown_entrypoint_admits_the_whole_pod_unwrapped() {
        for v in [args_only_pod(), {
            let mut v = web_pod();
            v["spec"]["containers"][0]
                .as_object_mut()
                .unwrap()
                .retain(|k, _| k != "command" && k != "args");
            v
        }] {
            let m = run(&pod(v.clone()));
            let Verdict::Skipped(reason) = &m.verdict else {
                panic!("{:?}", m.verdict)
            };
            assert!(reason.contains("image entrypoint unknown"), "{reason}");
            assert_eq!(m.warnings.len(), 1);
            assert!(m.policies.is_empty());
            let p = json_of(&m.pod);
            // Only the explanatory status: never half-wrapped.
            assert_eq!(m.patch.0.len(), 1);
            assert_eq!(status(&p).skipped.as_deref(), Some(reason.as_str()));
            assert_eq!(
                p["spec"]["containers"][0]["command"],
                v["spec"]["containers"][0]["command"]
            );
            let again = run(&m.pod);
            assert!(again.patch.0.is_empty());
            assert_eq!(again.verdict, m.verdict);
        }
    }

    #[test]
    fn unknown_entrypoint_refused_when_asked() {
        let settings = Settings {
            unknown_entrypoint: UnknownEntrypoint::Reject,
            ..Settings::default()
        };
        let err = refuse_with(&settings, &BTreeMap::new(), &pod(args_only_pod()));
        assert_eq!(
            err,
            "pod shop/web: container \"istio-proxy\" (spec.containers[1].command) sets only `args`, no `command`, so its image entrypoint is unknown at admission and landgate cannot wrap it; refused because the webhook runs with --unknown-entrypoint=reject. Set `command:` to the image's entrypoint (`docker inspect` shows it), or opt the pod out with landgate.dev/inject: \"false\""
        );
        let mut v = args_only_pod();
        v["metadata"]["annotations"] = json!({"landgate.dev/enforcement.web": "required"});
        let err = refuse(&pod(v));
        assert!(
            err.contains("container \"web\" requires enforcement (pod annotation landgate.dev/enforcement.web = required)"),
            "{err}"
        );
    }

    #[test]
    fn skips_excluded_namespaces_mirror_and_windows_pods() {
        let p = pod(web_pod());
        let m = mutate_pod(
            &Settings::default(),
            PodContext {
                namespace: "kube-system",
                namespace_annotations: &BTreeMap::new(),
            },
            &p,
        )
        .unwrap();
        assert!(m.patch.0.is_empty());
        assert!(matches!(m.verdict, Verdict::Skipped(r) if r.contains("kube-system")));

        let mut v = web_pod();
        v["metadata"]["annotations"] = json!({MIRROR_ANNOTATION: "abc"});
        let m = run(&pod(v));
        assert!(m.patch.0.is_empty());
        assert!(matches!(m.verdict, Verdict::Skipped(r) if r.contains("mirror")));

        let mut v = web_pod();
        v["spec"]["os"] = json!({"name": "windows"});
        let m = run(&pod(v.clone()));
        assert!(matches!(&m.verdict, Verdict::Skipped(r) if r.contains("Windows")));
        assert!(json_of(&m.pod)["spec"].get("initContainers").is_none());

        let ns = BTreeMap::from([(ENFORCEMENT.to_owned(), "required".to_owned())]);
        let err = refuse_with(&Settings::default(), &ns, &pod(v));
        assert!(err.contains("Windows pod"), "{err}");
        assert!(
            err.contains("annotation landgate.dev/enforcement on namespace shop = required"),
            "{err}"
        );
    }

    #[test]
    fn opt_out() {
        let mut v = web_pod();
        v["metadata"]["annotations"] = json!({INJECT: "false"});
        let m = run(&pod(v.clone()));
        let Verdict::Skipped(reason) = &m.verdict else {
            panic!()
        };
        assert_eq!(
            reason,
            "it opts out of landgate (pod annotation landgate.dev/inject = \"false\")"
        );
        assert_eq!(
            status(&json_of(&m.pod)).skipped.as_deref(),
            Some(reason.as_str())
        );
        assert!(m.warnings.is_empty());

        let ns = BTreeMap::from([(ENFORCEMENT.to_owned(), "required".to_owned())]);
        let err = refuse_with(&Settings::default(), &ns, &pod(v.clone()));
        assert!(
            err.starts_with("pod shop/web: it opts out of landgate"),
            "{err}"
        );
        // The pod's own annotation outranks the namespace's.
        v["metadata"]["annotations"][ENFORCEMENT] = json!("best-effort");
        run_with(&Settings::default(), &ns, &pod(v));
    }

    #[test]
    fn bad_annotation_names_pod_key_and_value() {
        let mut v = web_pod();
        v["metadata"]["annotations"] = json!({ENFORCEMENT: "bogus"});
        assert_eq!(
            refuse(&pod(v)),
            "pod shop/web: pod annotation landgate.dev/enforcement has invalid value \"bogus\": unknown enforcement \"bogus\": expected best-effort or required; fix or remove the annotation on the pod"
        );
    }

    #[test]
    fn annotations_shape_the_policy() {
        let mut v = web_pod();
        v["metadata"]["annotations"] = json!({
            PROFILE: "ports-only",
            "landgate.dev/connect-ports.web": "5432,53",
        });
        let m = run(&pod(v));
        let policy = &m.policies["web"];
        assert_eq!(policy.fs, None);
        assert_eq!(policy.net.connect, Some(PortSet::from([53, 5432])));
        let _ = CONNECT_PORTS;
    }

    #[test]
    fn reserved_names_and_paths_are_refused() {
        let mut v = web_pod();
        v["spec"]["volumes"][0]["name"] = json!("landgate");
        v["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("landgate");
        assert_eq!(
            refuse(&pod(v)),
            "pod shop/web: spec.volumes[0] is named \"landgate\", which landgate reserves for its launcher; rename the volume (and its volumeMounts)"
        );
        let mut v = web_pod();
        v["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!("/landgate/x");
        let err = refuse(&pod(v));
        assert!(
            err.contains("container \"web\" (spec.containers[0].volumeMounts[0]) mounts volume \"cache\" at /landgate/x"),
            "{err}"
        );
        let mut v = web_pod();
        v["spec"]["initContainers"] =
            json!([{"name": "landgate-init", "image": "x", "command": ["x"]}]);
        assert!(refuse(&pod(v)).contains("spec.initContainers[0] is named \"landgate-init\""));
    }

    #[test]
    fn tampering_is_detected() {
        let wrapped = json_of(&run(&pod(web_pod())).pod);

        let mut v = wrapped.clone();
        v["spec"]["containers"][0]["command"] = json!(["nginx"]);
        let err = refuse(&pod(v));
        assert!(err.contains("container \"web\" (spec.containers[0]) was changed after landgate wrapped the pod (its command no longer starts with /landgate/landgate exec --)"), "{err}");

        let mut v = wrapped.clone();
        v["spec"]["containers"][0]["command"] = json!([LAUNCHER, "exec", "--", "sh"]);
        assert!(refuse(&pod(v)).contains("no longer match the hash"));

        let mut v = wrapped.clone();
        let envs = v["spec"]["containers"][0]["env"].as_array_mut().unwrap();
        let policy = envs.iter_mut().find(|e| e["name"] == POLICY_ENV).unwrap();
        policy["value"] = json!("{\"v\":1}");
        assert!(refuse(&pod(v)).contains("no longer match the hash"));

        let mut v = wrapped.clone();
        v["spec"]["initContainers"][0]["image"] = json!("evil/launcher");
        rebuilt_init(v);

        let mut v = wrapped.clone();
        v["spec"]["volumes"][1] = json!({"name": "landgate", "hostPath": {"path": "/"}});
        assert!(refuse(&pod(v)).contains("spec.volumes[1] (landgate)"));

        let mut v = wrapped;
        v["metadata"]["annotations"][derive::STATUS] = json!("{\"version\":7}");
        assert!(refuse(&pod(v)).contains("has version 7"));
    }

    #[test]
    fn service_account_token_mount_on_landgate_init_is_not_tampering() {
        // What kube-apiserver's ServiceAccount admission plugin adds to every
        // container before it re-invokes landgate.
        let token = json!({
            "name": "kube-api-access-x7k2p",
            "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"
        });
        let mut wrapped = json_of(&run(&pod(web_pod())).pod);
        wrapped["spec"]["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({
                "name": "kube-api-access-x7k2p",
                "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}
            }));
        let mut v = wrapped.clone();
        v["spec"]["initContainers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(token.clone());
        v["spec"]["containers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(token.clone());
        assert_eq!(run(&pod(v.clone())).verdict, Verdict::AlreadyWrapped);

        let mut writable = token;
        writable["readOnly"] = json!(false);
        v["spec"]["initContainers"][0]["volumeMounts"][1] = writable;
        rebuilt_init(v);

        let mut v = wrapped;
        v["spec"]["initContainers"][0]["volumeMounts"] = json!([]);
        rebuilt_init(v);
    }

    #[test]
    fn another_launcher_tag_or_wrapper_list_becomes_this_replicas() {
        // A reinvocation reaching a webhook replica from the next release,
        // or a copied pod pinning an older launcher without later fixes, or
        // a wrapper list without `sh`: landgate-init is rebuilt, not refused
        // (a rollout keeps working) and not kept (no downgrade).
        let wrapped = json_of(&run(&pod(web_pod())).pod);
        let mut v = wrapped.clone();
        v["spec"]["initContainers"][0]["image"] =
            json!("ghcr.io/landgate-dev/landgate-launcher@sha256:0123abcd");
        v["spec"]["initContainers"][0]["command"][4] = json!("nc");
        rebuilt_init(v);

        let mut v = wrapped;
        v["spec"]["initContainers"][0]["command"][4] = json!("sh,../../bin/evil");
        rebuilt_init(v);
    }

    #[test]
    fn a_wrapped_container_reads_back_as_it_was() {
        let mut v = web_pod();
        let handler = json!({"exec": {"command": ["sh", "-c", "true"]}});
        let web = &mut v["spec"]["containers"][0];
        web["env"] = json!([{"name": "PATH", "value": "/usr/bin"}]);
        web["livenessProbe"] = handler.clone();
        web["startupProbe"] = json!({"exec": {"command": []}});
        web["lifecycle"] = json!({"preStop": handler, "postStart": {"sleep": {"seconds": 1}}});
        let before = pod(v);
        let wrapped = run(&before).pod;
        let spec = wrapped.spec.as_ref().unwrap();
        let settings = Settings::default();
        let engine = Engine::read(
            &settings,
            PodContext {
                namespace: "shop",
                namespace_annotations: &BTreeMap::new(),
            },
            &wrapped,
            spec,
            wrapped.metadata.annotations.as_ref().unwrap(),
            "shop/web".into(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            engine.views[0].original,
            before.spec.as_ref().unwrap().containers[0]
        );
    }

    #[test]
    fn defaulted_fields_are_not_tampering() {
        // The API server defaults fields of injected containers between passes.
        let mut v = json_of(&run(&pod(web_pod())).pod);
        v["spec"]["initContainers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        v["spec"]["initContainers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
        v["spec"]["containers"][0]["terminationMessagePolicy"] = json!("File");
        let m = run(&pod(v));
        assert_eq!(m.verdict, Verdict::AlreadyWrapped);
    }

    #[test]
    fn reinvocation_wraps_added_containers_only() {
        let first = run(&pod(web_pod()));
        let mut v = json_of(&first.pod);
        v["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "log", "image": "fluent-bit", "command": ["/fluent-bit/bin/fluent-bit"]}));
        let second = run(&pod(v));
        assert_eq!(second.verdict, Verdict::Wrapped);
        assert!(
            second
                .patch
                .0
                .iter()
                .all(|op| !op.path().as_str().starts_with("/spec/containers/0")
                    && !op.path().as_str().starts_with("/spec/initContainers")),
            "{:?}",
            second.patch
        );
        let p = json_of(&second.pod);
        assert_eq!(
            p["spec"]["containers"][0]["command"],
            json!([LAUNCHER, "exec", "--", "nginx"])
        );
        assert_eq!(
            p["spec"]["containers"][1]["command"],
            json!([LAUNCHER, "exec", "--", "/fluent-bit/bin/fluent-bit"])
        );
        assert_eq!(status(&p).containers.len(), 2);
        assert!(run(&second.pod).patch.0.is_empty());
    }

    #[test]
    fn reinvocation_moves_landgate_init_first() {
        let first = run(&pod(web_pod()));
        let mut v = json_of(&first.pod);
        v["spec"]["initContainers"].as_array_mut().unwrap().insert(
            0,
            json!({"name": "mesh-init", "image": "mesh", "command": ["/init"]}),
        );
        let second = run(&pod(v));
        let p = json_of(&second.pod);
        assert_eq!(p["spec"]["initContainers"][0]["name"], "landgate-init");
        assert_eq!(
            p["spec"]["initContainers"][1]["command"],
            json!([LAUNCHER, "exec", "--", "/init"])
        );
        assert!(run(&second.pod).patch.0.is_empty());
    }

    #[test]
    fn reinvocation_rederives_the_policy() {
        let first = run(&pod(web_pod()));
        let mut v = json_of(&first.pod);
        v["spec"]["containers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "secrets", "mountPath": "/vault/secrets"}));
        let second = run(&pod(v));
        assert_eq!(second.verdict, Verdict::Wrapped);
        let rw = &second.policies["web"].fs.as_ref().unwrap().rw;
        assert!(rw.contains(&"/vault/secrets".parse().unwrap()));
        assert!(run(&second.pod).patch.0.is_empty());
    }

    #[test]
    fn reinvocation_that_must_skip_unwraps_everything() {
        let mut base = web_pod();
        base["spec"]["containers"][0]["env"] = json!([{"name": "PATH", "value": "/usr/bin"}]);
        base["spec"]["containers"][0]["livenessProbe"] = json!({"exec": {"command": ["true"]}});
        let first = run(&pod(base.clone()));
        let mut v = json_of(&first.pod);
        let sidecar = json!({"name": "istio-proxy", "image": "proxyv2", "args": ["proxy"]});
        v["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(sidecar.clone());
        let second = run(&pod(v));
        assert!(matches!(second.verdict, Verdict::Skipped(_)));

        // Same as if landgate had seen the sidecar on the first pass.
        base["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(sidecar);
        let direct = run(&pod(base));
        assert_eq!(json_of(&second.pod), json_of(&direct.pod));
    }

    #[test]
    fn host_network_pods_are_wrapped() {
        let mut v = web_pod();
        v["spec"]["hostNetwork"] = json!(true);
        v["spec"]["containers"][0]["ports"] = json!([{"containerPort": 9100, "hostPort": 9100}]);
        let m = run(&pod(v));
        assert_eq!(m.verdict, Verdict::Wrapped);
        assert_eq!(m.policies["web"].net.bind, Some(PortSet::from([9100])));
    }

    #[test]
    fn zero_and_fifty_containers() {
        let m = run(&pod(
            json!({"metadata": {"name": "empty"}, "spec": {"containers": []}}),
        ));
        assert!(matches!(m.verdict, Verdict::Skipped(r) if r == "pod has no containers"));

        let containers: Vec<Value> = (0..50)
            .map(|i| {
                json!({"name": format!("c{i}"), "image": "busybox", "command": ["sleep", "1d"],
                            "ports": [{"containerPort": 8000 + i}]})
            })
            .collect();
        let m = run(&pod(
            json!({"metadata": {"name": "many"}, "spec": {"containers": containers}}),
        ));
        assert_eq!(m.verdict, Verdict::Wrapped);
        assert_eq!(m.policies.len(), 50);
        assert_eq!(m.policies["c49"].net.bind, Some(PortSet::from([8049])));
        assert!(run(&m.pod).patch.0.is_empty());
    }

    #[test]
    fn duplicate_container_names_are_refused() {
        let mut v = web_pod();
        let dup = v["spec"]["containers"][0].clone();
        v["spec"]["initContainers"] = json!([dup]);
        assert!(refuse(&pod(v)).contains("container name \"web\" is used twice"));
    }

    #[test]
    fn ephemeral_containers_are_reported() {
        let mut v = web_pod();
        v["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]);
        let m = run(&pod(v));
        assert!(m.warnings[0].contains("ephemeralContainers are not wrapped"));
    }
}

/// The admission escapes found in review, each as the attack it was.
#[cfg(test)]
mod escapes {
    use super::*;
    use serde_json::{Value, json};

    fn pod(value: Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn mutate(v: &Value) -> Result<Mutation, MutateError> {
        mutate_pod(
            &Settings::default(),
            PodContext {
                namespace: "shop",
                namespace_annotations: &BTreeMap::new(),
            },
            &pod(v.clone()),
        )
    }

    fn refused(v: &Value) -> String {
        match mutate(v) {
            Ok(m) => panic!(
                "admitted ({:?}) but must be refused: {}",
                m.verdict,
                serde_json::to_string(&m.pod).unwrap()
            ),
            Err(err) => err.to_string(),
        }
    }

    fn wrapped(v: &Value) -> Value {
        let m = mutate(v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.verdict, Verdict::Wrapped);
        serde_json::to_value(&m.pod).unwrap()
    }

    /// The first container's LANDGATE_POLICY as written into the pod.
    fn policy_of(p: &Value) -> String {
        p["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == POLICY_ENV)
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn web_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"containers": [{
                "name": "web", "image": "nginx:1.27",
                "command": ["nginx"],
                "ports": [{"containerPort": 8080}],
                "volumeMounts": [{"name": "cache", "mountPath": "/var/cache/nginx"}]
            }],
            "volumes": [{"name": "cache", "emptyDir": {}}]}
        })
    }

    /// Escape 1: a mount of the `landgate` volume by name, in any container
    /// kind, read-only or not, wherever it is mounted.
    #[rstest::rstest]
    #[case::init("initContainers", "/lg", false)]
    #[case::init_read_only("initContainers", "/lg", true)]
    #[case::app("containers", "/opt/lg", false)]
    #[case::app_read_only_at_landgate_path("containers", "/landgate", true)]
    fn the_launcher_volume_cannot_be_mounted_by_name(
        #[case] list: &str,
        #[case] path: &str,
        #[case] read_only: bool,
    ) {
        let mut v = web_pod();
        let mount = json!({"name": "landgate", "mountPath": path, "readOnly": read_only});
        if list == "initContainers" {
            v["spec"]["initContainers"] = json!([{
                "name": "prep", "image": "busybox", "command": ["sh", "-c", "true"],
                "volumeMounts": [mount]
            }]);
        } else {
            v["spec"]["containers"][0]["volumeMounts"]
                .as_array_mut()
                .unwrap()
                .push(mount);
        }
        let err = refused(&v);
        assert!(err.contains("mounts volume \"landgate\""), "{err}");
        assert!(err.contains("landgate reserves"), "{err}");
    }

    #[test]
    fn the_launcher_volume_cannot_be_mounted_by_a_sidecar_or_ephemeral_container() {
        let mut v = web_pod();
        v["spec"]["initContainers"] = json!([{
            "name": "proxy", "image": "envoy", "command": ["envoy"], "restartPolicy": "Always",
            "volumeMounts": [{"name": "landgate", "mountPath": "/lg", "subPath": "bin"}]
        }]);
        assert!(refused(&v).contains("container \"proxy\""));

        let mut v = web_pod();
        v["spec"]["ephemeralContainers"] = json!([{
            "name": "debug", "image": "busybox",
            "volumeMounts": [{"name": "landgate", "mountPath": "/lg"}]
        }]);
        let err = refused(&v);
        assert!(err.contains("spec.ephemeralContainers[0]"), "{err}");
    }

    #[test]
    fn on_reinvocation_only_landgates_own_mounts_of_its_volume_are_accepted() {
        let done = wrapped(&web_pod());
        // A container added by a later webhook that mounts the volume.
        let mut v = done.clone();
        v["spec"]["containers"].as_array_mut().unwrap().push(json!({
            "name": "late", "image": "busybox", "command": ["sleep", "1d"],
            "volumeMounts": [{"name": "landgate", "mountPath": "/landgate", "readOnly": true}]
        }));
        assert!(refused(&v).contains("container \"late\""));
        // A second, writable mount in a wrapped container.
        let mut v = done;
        v["spec"]["containers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "landgate", "mountPath": "/lg"}));
        refused(&v);
    }

    /// Escape 2: spellings that reach /landgate at run time.
    #[rstest::rstest]
    #[case("/x/../landgate/landgate")]
    #[case("/../landgate")]
    #[case("landgate/bin")]
    #[case("landgate")]
    #[case("//landgate")]
    #[case("/landgate/.")]
    #[case("/./landgate/bin/")]
    fn mount_paths_are_normalised_before_the_reserved_check(#[case] path: &str) {
        let mut v = web_pod();
        v["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!(path);
        let err = refused(&v);
        assert!(
            err.contains("landgate reserves") || err.contains("`..`"),
            "{path}: {err}"
        );
    }

    #[test]
    fn sub_path_mounts_onto_landgate_are_refused() {
        let mut v = web_pod();
        v["spec"]["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "evil", "configMap": {"name": "evil", "defaultMode": 493}}));
        v["spec"]["containers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "evil", "mountPath": "landgate/landgate", "subPath": "landgate"}));
        assert!(refused(&v).contains("landgate reserves"));
        let mut v2 = v.clone();
        v2["spec"]["containers"][0]["volumeMounts"][1] =
            json!({"name": "evil", "mountPath": "/landgate/bin/sh", "subPathExpr": "$(POD)"});
        assert!(refused(&v2).contains("landgate reserves"));
    }

    /// A symlink planted in a volume the pod controls redirects a mount
    /// nested inside it (runtimes mount by depth, resolving symlinks), on
    /// top of /landgate.
    #[test]
    fn mounts_nested_inside_a_volume_the_pod_controls_are_refused() {
        let mut v = web_pod();
        v["spec"]["initContainers"] = json!([{
            "name": "prep", "image": "busybox", "command": ["sh", "-c", "ln -s /landgate /shared/lg"],
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]
        }]);
        v["spec"]["volumes"] = json!([
            {"name": "cache", "emptyDir": {}},
            {"name": "shared", "emptyDir": {}},
            {"name": "payload", "configMap": {"name": "payload", "defaultMode": 493}}
        ]);
        v["spec"]["containers"][0]["volumeMounts"] = json!([
            {"name": "shared", "mountPath": "/shared", "readOnly": true},
            {"name": "payload", "mountPath": "/shared/lg"}
        ]);
        let err = refused(&v);
        assert!(
            err.contains("mounts at /shared/lg, inside volume \"shared\" mounted at /shared"),
            "{err}"
        );
        // Inside a configMap (the kubelet writes it; no symlink can be
        // planted) is fine, and so is beside a volume.
        v["spec"]["containers"][0]["volumeMounts"] = json!([
            {"name": "payload", "mountPath": "/etc/app"},
            {"name": "cache", "mountPath": "/etc/app/cache"},
            {"name": "shared", "mountPath": "/shared"}
        ]);
        assert_eq!(mutate(&v).unwrap().verdict, Verdict::Wrapped);
        // A volume at / would hold landgate's own mount point.
        v["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "shared", "mountPath": "/"}]);
        let err = refused(&v);
        assert!(err.contains("the launcher mount"), "{err}");
    }

    #[rstest::rstest]
    #[case::termination_log(json!({"terminationMessagePath": "/landgate/landgate"}), "termination log")]
    #[case::device(json!({"volumeDevices": [{"name": "cache", "devicePath": "landgate/bin/sh"}]}), "places device")]
    fn other_kubelet_placed_files_under_landgate_are_refused(
        #[case] fields: Value,
        #[case] what: &str,
    ) {
        let mut v = web_pod();
        for (k, value) in fields.as_object().unwrap() {
            v["spec"]["containers"][0][k] = value.clone();
        }
        let err = refused(&v);
        assert!(
            err.contains(what) && err.contains("landgate reserves"),
            "{err}"
        );
    }

    /// Found by fuzzing: an app container named landgate-init, on the first
    /// pass or added before a reinvocation, would give the pod two.
    #[test]
    fn the_init_container_name_is_reserved_in_every_list() {
        let mut v = web_pod();
        v["spec"]["containers"][0]["name"] = json!("landgate-init");
        let err = refused(&v);
        assert!(
            err.contains("spec.containers[0] is named \"landgate-init\""),
            "{err}"
        );
        let mut done = wrapped(&web_pod());
        done["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "landgate-init", "image": "busybox", "command": ["true"]}));
        assert!(refused(&done).contains("spec.containers[1] is named \"landgate-init\""));
    }

    #[test]
    fn mount_paths_with_dot_dot_are_refused_in_a_wrapped_pod() {
        let mut v = web_pod();
        v["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!("/var/../srv/cache");
        let err = refused(&v);
        assert!(
            err.contains("spec.containers[0].volumeMounts[0].mountPath"),
            "{err}"
        );
        assert!(err.contains("`..`"), "{err}");
    }

    #[test]
    fn relative_mount_paths_are_made_absolute_as_the_kubelet_does() {
        let mut v = web_pod();
        v["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!("srv/cache/");
        let m = mutate(&v).unwrap();
        let rw = &m.policies["web"].fs.as_ref().unwrap().rw;
        assert!(
            rw.iter().any(|p| p.to_string() == "/srv/cache"),
            "{rw:?} lacks /srv/cache"
        );
        assert!(
            m.warnings.iter().all(|w| !w.contains("ignored")),
            "{:?}",
            m.warnings
        );
    }

    /// Runs a pod whose landgate-init was changed: it comes back rebuilt
    /// exactly as landgate builds it (plus `tokens` mounts).
    fn rebuilt(v: &Value, tokens: &[Value]) -> Value {
        let m = mutate(v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.verdict, Verdict::Wrapped);
        assert!(
            m.warnings.iter().any(|w| w.contains("was rebuilt")),
            "{:?}",
            m.warnings
        );
        let out = serde_json::to_value(&m.pod).unwrap();
        let spec: PodSpec = serde_json::from_value(out["spec"].clone()).unwrap();
        let mut want = serde_json::to_value(init_container(&Settings::default(), &spec)).unwrap();
        want["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .extend(tokens.iter().cloned());
        assert_eq!(out["spec"]["initContainers"][0], want);
        // And the rebuilt pod verifies.
        assert_eq!(mutate(&out).unwrap().verdict, Verdict::AlreadyWrapped);
        out
    }

    /// Escape 3: a forged or extended status accepted as "already wrapped".
    #[test]
    fn a_tenant_mount_on_landgate_init_is_removed_by_rebuilding_it() {
        let mut v = wrapped(&web_pod());
        v["spec"]["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "evil", "configMap": {"name": "evil", "defaultMode": 493}}));
        v["spec"]["initContainers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "evil", "mountPath": "/usr/local/bin", "readOnly": true}));
        rebuilt(&v, &[]);
    }

    #[test]
    fn only_a_token_volume_may_be_mounted_at_the_token_directory_of_landgate_init() {
        let done = wrapped(&web_pod());
        let token_mount = json!({
            "name": "kube-api-access-x7k2p", "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"
        });
        let projected = json!({"name": "kube-api-access-x7k2p", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
        ]}});
        let mut ok = done.clone();
        ok["spec"]["volumes"]
            .as_array_mut()
            .unwrap()
            .push(projected);
        ok["spec"]["initContainers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(token_mount.clone());
        assert_eq!(mutate(&ok).unwrap().verdict, Verdict::AlreadyWrapped);

        // The same mount path, but from a ConfigMap the tenant controls.
        let mut v = done;
        v["spec"]["volumes"].as_array_mut().unwrap().push(
            json!({"name": "kube-api-access-x7k2p", "configMap": {"name": "evil", "defaultMode": 493}}),
        );
        v["spec"]["initContainers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(token_mount);
        rebuilt(&v, &[]);
    }

    #[rstest::rstest]
    #[case::env("env", json!([{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]))]
    #[case::security_context("securityContext", json!({"runAsUser": 0, "allowPrivilegeEscalation": true}))]
    #[case::working_dir("workingDir", json!("/tmp"))]
    #[case::args("args", json!(["--wrappers", "sh"]))]
    #[case::stdin("stdin", json!(true))]
    #[case::volume_devices("volumeDevices", json!([{"name": "cache", "devicePath": "/dev/x"}]))]
    fn landgate_init_is_rebuilt_unless_it_equals_what_landgate_builds(
        #[case] field: &str,
        #[case] value: Value,
    ) {
        let mut v = wrapped(&web_pod());
        v["spec"]["initContainers"][0][field] = value;
        rebuilt(&v, &[]);
    }

    /// A wrapped pod whose container has `path` as its PATH, with a status
    /// forged to match it (the hash is not a secret).
    fn forged(path_before: &str, path: &str, edit: PathEdit) -> Value {
        let mut v = web_pod();
        v["spec"]["containers"][0]["env"] = json!([{"name": "PATH", "value": path_before}]);
        let mut done = wrapped(&v);
        let c = &mut done["spec"]["containers"][0];
        let command: Vec<String> = serde_json::from_value(c["command"].clone()).unwrap();
        let env = c["env"].as_array_mut().unwrap();
        env[0]["value"] = json!(path);
        let policy = env.iter().find(|e| e["name"] == POLICY_ENV).unwrap()["value"]
            .as_str()
            .unwrap()
            .to_owned();
        let recorded = (edit != PathEdit::Untouched).then_some(path);
        let hash = container_hash("web", &command, &policy, recorded, edit);
        let status = Status {
            version: STATUS_VERSION,
            containers: BTreeMap::from([("web".to_owned(), WrappedContainer { hash, path: edit })]),
            skipped: None,
        };
        done["metadata"]["annotations"][derive::STATUS] = json!(status.to_annotation());
        done
    }

    #[test]
    fn a_forged_untouched_path_is_tampering() {
        // A status that claims PATH comes from valueFrom while the container
        // has a plain PATH without /landgate/bin: `kubectl exec … sh` would
        // not be caught.
        let done = forged("/usr/bin:/bin", "/usr/bin:/bin", PathEdit::Untouched);
        let err = refused(&done);
        assert!(err.contains("PATH"), "{err}");

        // And a PATH that only starts with the same letters.
        let done = forged("/usr/bin", "/landgate/binx:/usr/bin", PathEdit::Prefixed);
        assert!(refused(&done).contains("PATH"));
    }

    #[test]
    fn a_prefilled_status_on_create_is_accepted_only_when_it_verifies_exactly() {
        // What landgate itself produced verifies: an empty patch.
        let done = wrapped(&web_pod());
        assert_eq!(mutate(&done).unwrap().verdict, Verdict::AlreadyWrapped);
        // A forged policy with a recomputed hash is re-derived, not trusted.
        let mut v = done;
        let c = &mut v["spec"]["containers"][0];
        let command: Vec<String> = serde_json::from_value(c["command"].clone()).unwrap();
        let env = c["env"].as_array_mut().unwrap();
        let lax = r#"{"v":1,"net":{"bind":null}}"#;
        env.iter_mut().find(|e| e["name"] == POLICY_ENV).unwrap()["value"] = json!(lax);
        let path = env.iter().find(|e| e["name"] == "PATH").unwrap()["value"]
            .as_str()
            .unwrap()
            .to_owned();
        let hash = container_hash("web", &command, lax, Some(&path), PathEdit::Added);
        let forged = json!({"version": 1, "containers": {"web": {"hash": hash, "path": "added"}}});
        v["metadata"]["annotations"][derive::STATUS] = json!(forged.to_string());
        let m = mutate(&v).unwrap();
        assert_eq!(m.verdict, Verdict::Wrapped);
        let fixed = serde_json::to_value(&m.pod).unwrap();
        let policy = policy_of(&fixed);
        assert_ne!(policy, lax);
        assert!(policy.contains("\"bind\":[8080]"), "{policy}");
    }

    /// `$(VAR)` in a value landgate writes would be expanded by the kubelet.
    #[test]
    fn dollar_signs_in_the_policy_are_escaped_for_the_kubelet() {
        let mut v = web_pod();
        v["metadata"]["annotations"] = json!({"landgate.dev/writable-paths": "/data/$(HOME)"});
        let m = mutate(&v).unwrap();
        let p = serde_json::to_value(&m.pod).unwrap();
        let policy = policy_of(&p);
        assert!(policy.contains("/data/$$(HOME)"), "{policy}");
        assert_eq!(expand_like_kubelet(&policy), m.policies["web"].to_json());
        // And reinvocation verifies it.
        assert_eq!(mutate(&p).unwrap().verdict, Verdict::AlreadyWrapped);
    }

    /// The kubelet's `$(VAR)` expansion with no variables defined:
    /// `$$` becomes `$`, `$(X)` stays as written.
    fn expand_like_kubelet(s: &str) -> String {
        s.replace("$$", "$")
    }

    #[test]
    fn writable_directories_on_path_are_reported_and_refused_under_required() {
        let mut v = web_pod();
        v["spec"]["containers"][0]["env"] =
            json!([{"name": "PATH", "value": "/var/cache/nginx/bin:/usr/bin"}]);
        let m = mutate(&v).unwrap();
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("PATH directory /var/cache/nginx/bin is writable")),
            "{:?}",
            m.warnings
        );
        v["metadata"]["annotations"] = json!({"landgate.dev/enforcement": "required"});
        let err = refused(&v);
        assert!(err.contains("/var/cache/nginx/bin"), "{err}");
    }
}
