//! A compact, `arbitrary`-derived model of a Pod for the structure-aware
//! engine target: a few containers with names from a small alphabet, and
//! field values drawn from dictionaries of what matters to the engine
//! (reserved names and paths, `$` for the kubelet, out-of-range ports,
//! every volume kind the policy derivation tells apart, landgate's
//! annotations and status) or from arbitrary strings.
//!
//! The model produces what the API server sends: lists are absent rather
//! than empty and empty strings are omitted (Go's `omitempty`), and volume
//! names are unique (validation would refuse the pod otherwise). What
//! other admission plugins change before landgate runs again is in
//! [`crate::later`].

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, EphemeralContainer, ExecAction, HostPathVolumeSource,
    Lifecycle, LifecycleHandler, ObjectFieldSelector, Pod, PodOS, PodSecurityContext, PodSpec,
    Probe, ProjectedVolumeSource, SecretVolumeSource, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use landgate_engine::derive;
use landgate_engine::mutate::{INIT_CONTAINER_NAME, MIRROR_ANNOTATION, SERVICE_ACCOUNT_TOKEN_DIR};

use crate::later::Edit;
use crate::props::PodCase;

/// Lists are cut to this length: the engine's rules are about a few
/// containers, mounts and variables interacting, not about many.
pub(crate) const FEW: usize = 4;

const NAMESPACES: &[&str] = &["shop", "kube-system", ""];
const WORDS: &[&str] = &[
    "/app/server",
    "nginx",
    "sh",
    "-c",
    "$(A)",
    "/landgate/landgate",
    "exec",
    "--",
    "/usr/local/bin/landgate",
    "install",
    "/landgate",
    "",
];
const ENV_NAMES: &[&str] = &[
    "PATH",
    "LANDGATE_POLICY",
    "LANDGATE_ACTIVE",
    "LANDGATE_X",
    "HOME",
    "A",
];
const ENV_VALUES: &[&str] = &[
    "/usr/bin:/bin",
    "/landgate/bin:/usr/bin:/bin",
    "/landgate/bin",
    "/landgate/binx:/bin",
    "/tmp:/usr/bin",
    "$(A)",
    "$(",
    "$$",
    "$",
    "1",
    "",
    "/data/$(HOME)",
    r#"{"v":1}"#,
];
const VOLUME_NAMES: &[&str] = &["data", "conf", "token", "landgate", "kube-api-access-x"];
const MOUNT_PATHS: &[&str] = &[
    "/landgate",
    "landgate/bin",
    "/x/../landgate",
    SERVICE_ACCOUNT_TOKEN_DIR,
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "/landgate/",
    "//landgate",
    "/./landgate",
    "/landgate/bin",
    "/landgatex",
    "/data",
    "/tmp",
    "/usr/local/bin",
    "data",
    "/",
    "",
];
const SUB_PATHS: &[&str] = &["x", "", "../x", "landgate", "$(POD)"];
const WORKING_DIRS: &[&str] = &["/", "/app", "/srv", "/landgate", "/usr/src/app", "relative"];
const PORTS: &[i32] = &[80, 8080, 0, -1, 65535, 65536, 70000, i32::MIN, i32::MAX];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP", "tcp"];
const HOST_PATHS: &[&str] = &["/", "/landgate", "/var/log", "/usr/local/bin"];
const ANNOTATION_VALUES: &[&str] = &[
    "false",
    "true",
    "enabled",
    " false ",
    "baseline",
    "strict",
    "ports-only",
    "best-effort",
    "required",
    "/srv/data",
    "/var/x,/y",
    "/landgate/x",
    "/landgate",
    "/",
    "/data",
    "relative",
    "/a/../b",
    "53,443",
    "",
    ",",
    "70000",
    "-1",
    "8080, 8080",
];
const STATUS_VALUES: &[&str] = &[
    r#"{"version":1,"skipped":"x"}"#,
    r#"{"version":1}"#,
    r#"{"version":1,"containers":{}}"#,
    r#"{"version":2}"#,
    r#"{"version":1,"containers":{"app":{"hash":"sha256:00","path":"added"}}}"#,
    r#"{"version":1,"containers":{"app":{"hash":"","path":"untouched"}},"skipped":"x"}"#,
    r#"{"version":1,"extra":true}"#,
    "null",
    "{}",
    "",
];
const HASHES: &[&str] = &[
    "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    "",
];
pub(crate) const IMAGES: &[&str] = &[
    "ghcr.io/landgate-dev/landgate-launcher:0.2.0",
    "ghcr.io/landgate-dev/landgate-launcher@sha256:00",
    "evil.example/landgate-launcher:0.1.0",
    "ghcr.io/landgate-dev/landgate-launcher",
];

/// A string from a dictionary of values that matter, or any string.
#[derive(Arbitrary, Debug, Clone)]
pub enum Text {
    Known(u8),
    Any(String),
}

impl Text {
    pub fn pick(&self, dictionary: &[&str]) -> String {
        match self {
            Text::Known(i) => dictionary[usize::from(*i) % dictionary.len()].to_owned(),
            Text::Any(s) => s.clone(),
        }
    }

    /// As the API server stores it: an empty string is no value.
    pub fn non_empty(&self, dictionary: &[&str]) -> Option<String> {
        Some(self.pick(dictionary)).filter(|s| !s.is_empty())
    }
}

fn few<T>(items: &[T]) -> impl Iterator<Item = &T> {
    items.iter().take(FEW)
}

/// As the API server stores it: an empty list is no list.
pub(crate) fn list<T>(items: Vec<T>) -> Option<Vec<T>> {
    Some(items).filter(|l| !l.is_empty())
}

pub(crate) fn words(words: &[Text]) -> Vec<String> {
    few(words).map(|w| w.pick(WORDS)).collect()
}

/// Container names: a small alphabet, so that annotations, statuses and
/// edits name real containers (and collide), plus landgate's own.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    App,
    Web,
    Sidecar,
    Setup,
    LandgateInit,
}

impl Name {
    pub fn as_str(self) -> &'static str {
        match self {
            Name::App => "app",
            Name::Web => "web",
            Name::Sidecar => "sidecar",
            Name::Setup => "setup",
            Name::LandgateInit => INIT_CONTAINER_NAME,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct EnvModel {
    name: Text,
    value: EnvValue,
}

#[derive(Arbitrary, Debug, Clone)]
enum EnvValue {
    Value(Text),
    FieldRef,
    Unset,
}

impl EnvModel {
    pub fn env_var(&self) -> EnvVar {
        let (value, value_from) = match &self.value {
            EnvValue::Value(text) => (text.non_empty(ENV_VALUES), None),
            EnvValue::FieldRef => (
                None,
                Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "status.podIP".to_owned(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            ),
            EnvValue::Unset => (None, None),
        };
        EnvVar {
            name: self.name.pick(ENV_NAMES),
            value,
            value_from,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct MountModel {
    volume: Text,
    path: Text,
    read_only: Option<bool>,
    sub_path: Option<Text>,
    host_to_container: bool,
}

impl MountModel {
    pub fn volume_mount(&self) -> VolumeMount {
        VolumeMount {
            name: self.volume.pick(VOLUME_NAMES),
            mount_path: self.path.pick(MOUNT_PATHS),
            read_only: self.read_only,
            sub_path: self.sub_path.as_ref().and_then(|s| s.non_empty(SUB_PATHS)),
            mount_propagation: self.host_to_container.then(|| "HostToContainer".to_owned()),
            ..Default::default()
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct PortModel {
    number: PortNumber,
    protocol: Option<Text>,
    named: bool,
}

#[derive(Arbitrary, Debug, Clone)]
enum PortNumber {
    Known(u8),
    Any(i32),
}

impl PortModel {
    fn container_port(&self) -> ContainerPort {
        ContainerPort {
            container_port: match self.number {
                PortNumber::Known(i) => PORTS[usize::from(i) % PORTS.len()],
                PortNumber::Any(n) => n,
            },
            protocol: self.protocol.as_ref().and_then(|p| p.non_empty(PROTOCOLS)),
            name: self.named.then(|| "http".to_owned()),
            ..Default::default()
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct ContainerModel {
    name: Name,
    command: Option<Vec<Text>>,
    args: Option<Vec<Text>>,
    env: Vec<EnvModel>,
    env_from: bool,
    mounts: Vec<MountModel>,
    ports: Vec<PortModel>,
    working_dir: Option<Text>,
    read_only_root: Option<bool>,
    liveness_exec: Option<Vec<Text>>,
    pre_stop_exec: Option<Vec<Text>>,
    /// A native sidecar when it is an init container.
    sidecar: bool,
}

fn exec(command: &[Text]) -> Option<ExecAction> {
    Some(ExecAction {
        command: list(words(command)),
    })
}

impl ContainerModel {
    pub fn container(&self, init: bool) -> Container {
        Container {
            name: self.name.as_str().to_owned(),
            image: Some("img".to_owned()),
            command: self.command.as_deref().map(words).and_then(list),
            args: self.args.as_deref().map(words).and_then(list),
            env: list(few(&self.env).map(EnvModel::env_var).collect()),
            env_from: self.env_from.then(|| {
                vec![EnvFromSource {
                    config_map_ref: Some(Default::default()),
                    ..Default::default()
                }]
            }),
            volume_mounts: list(few(&self.mounts).map(MountModel::volume_mount).collect()),
            ports: list(few(&self.ports).map(PortModel::container_port).collect()),
            working_dir: self
                .working_dir
                .as_ref()
                .and_then(|d| d.non_empty(WORKING_DIRS)),
            security_context: self.read_only_root.map(|ro| {
                k8s_openapi::api::core::v1::SecurityContext {
                    read_only_root_filesystem: Some(ro),
                    ..Default::default()
                }
            }),
            liveness_probe: self.liveness_exec.as_deref().map(|command| Probe {
                exec: exec(command),
                ..Default::default()
            }),
            lifecycle: self.pre_stop_exec.as_deref().map(|command| Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    exec: exec(command),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            restart_policy: (init && self.sidecar).then(|| "Always".to_owned()),
            ..Default::default()
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct VolumeModel {
    name: Text,
    kind: VolumeKind,
}

#[derive(Arbitrary, Debug, Clone)]
enum VolumeKind {
    EmptyDir,
    MemoryEmptyDir,
    ConfigMap,
    ProjectedToken,
    ProjectedConfigMap,
    Secret,
    HostPath(Text),
}

impl VolumeModel {
    pub fn volume(&self) -> Volume {
        let mut volume = Volume {
            name: self.name.pick(VOLUME_NAMES),
            ..Default::default()
        };
        let projected = |source: VolumeProjection| ProjectedVolumeSource {
            sources: Some(vec![source]),
            ..Default::default()
        };
        match &self.kind {
            VolumeKind::EmptyDir => volume.empty_dir = Some(EmptyDirVolumeSource::default()),
            VolumeKind::MemoryEmptyDir => {
                volume.empty_dir = Some(EmptyDirVolumeSource {
                    medium: Some("Memory".to_owned()),
                    size_limit: Some(Quantity("16Mi".to_owned())),
                });
            }
            VolumeKind::ConfigMap => {
                volume.config_map = Some(ConfigMapVolumeSource {
                    name: "conf".to_owned(),
                    ..Default::default()
                });
            }
            VolumeKind::ProjectedToken => volume.projected = Some(projected(token_projection())),
            VolumeKind::ProjectedConfigMap => {
                volume.projected = Some(projected(VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "conf".to_owned(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }));
            }
            VolumeKind::Secret => {
                volume.secret = Some(SecretVolumeSource {
                    secret_name: Some("token".to_owned()),
                    ..Default::default()
                });
            }
            VolumeKind::HostPath(path) => {
                volume.host_path = Some(HostPathVolumeSource {
                    path: path.pick(HOST_PATHS),
                    ..Default::default()
                });
            }
        }
        volume
    }
}

pub(crate) fn token_projection() -> VolumeProjection {
    VolumeProjection {
        service_account_token: Some(ServiceAccountTokenProjection {
            path: "token".to_owned(),
            expiration_seconds: Some(3607),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Adds `volume` unless the pod has one of that name.
pub(crate) fn add_volume(spec: &mut PodSpec, volume: Volume) {
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if volumes.iter().all(|v| v.name != volume.name) {
        volumes.push(volume);
    }
}

/// An annotation: landgate's keys (optionally per container), near misses
/// and others, with values from a dictionary or arbitrary.
#[derive(Arbitrary, Debug, Clone)]
pub struct AnnotationModel {
    key: Key,
    suffix: Option<Suffix>,
    value: Text,
}

/// The `.<container>` of a per-container key.
#[derive(Arbitrary, Debug, Clone)]
pub enum Suffix {
    Container(Name),
    Any(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Key {
    Inject,
    Profile,
    WritablePaths,
    ReadablePaths,
    ConnectPorts,
    Enforcement,
    Status,
    Typo,
    Foreign,
    Mirror,
    Any(String),
}

impl Key {
    pub fn base(&self) -> String {
        match self {
            Key::Inject => derive::INJECT,
            Key::Profile => derive::PROFILE,
            Key::WritablePaths => derive::WRITABLE_PATHS,
            Key::ReadablePaths => derive::READABLE_PATHS,
            Key::ConnectPorts => derive::CONNECT_PORTS,
            Key::Enforcement => derive::ENFORCEMENT,
            Key::Status => derive::STATUS,
            Key::Typo => "landgate.dev/profiles",
            Key::Foreign => "example.com/team",
            Key::Mirror => MIRROR_ANNOTATION,
            Key::Any(key) => key,
        }
        .to_owned()
    }
}

impl AnnotationModel {
    pub fn entry(&self) -> (String, String) {
        let mut key = self.key.base();
        match &self.suffix {
            None => {}
            Some(Suffix::Container(name)) => key = format!("{key}.{}", name.as_str()),
            Some(Suffix::Any(suffix)) => key = format!("{key}.{suffix}"),
        }
        let dictionary = match self.key {
            Key::Status => STATUS_VALUES,
            _ => ANNOTATION_VALUES,
        };
        (key, self.value.pick(dictionary))
    }
}

pub fn annotations(models: &[AnnotationModel]) -> BTreeMap<String, String> {
    few(models).map(AnnotationModel::entry).collect()
}

/// A `landgate.dev/status` the pod arrives with: a raw value, or records
/// that look like landgate's.
#[derive(Arbitrary, Debug, Clone)]
enum StatusModel {
    Raw(Text),
    Records {
        containers: Vec<(Name, Text, PathEdit)>,
        skipped: Option<String>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum PathEdit {
    Added,
    Prefixed,
    Untouched,
}

impl StatusModel {
    fn annotation(&self) -> String {
        match self {
            StatusModel::Raw(text) => text.pick(STATUS_VALUES),
            StatusModel::Records {
                containers,
                skipped,
            } => {
                let containers: serde_json::Map<String, serde_json::Value> = few(containers)
                    .map(|(name, hash, path)| {
                        let path = match path {
                            PathEdit::Added => "added",
                            PathEdit::Prefixed => "prefixed",
                            PathEdit::Untouched => "untouched",
                        };
                        (
                            name.as_str().to_owned(),
                            serde_json::json!({"hash": hash.pick(HASHES), "path": path}),
                        )
                    })
                    .collect();
                let mut status = serde_json::json!({"version": 1, "containers": containers});
                if let Some(reason) = skipped {
                    status["skipped"] = serde_json::json!(reason);
                }
                status.to_string()
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Os {
    Linux,
    Windows,
    WindowsNodeSelector,
}

/// What the engine target generates: a pod, its namespace, and what other
/// admission plugins change before landgate is invoked again.
#[derive(Arbitrary, Debug, Clone)]
pub struct PodModel {
    namespace: Text,
    namespace_annotations: Vec<AnnotationModel>,
    annotations: Vec<AnnotationModel>,
    status: Option<StatusModel>,
    init_containers: Vec<ContainerModel>,
    containers: Vec<ContainerModel>,
    /// Mounts of one ephemeral container (none when empty).
    ephemeral_mounts: Vec<MountModel>,
    volumes: Vec<VolumeModel>,
    os: Option<Os>,
    run_as_root: bool,
    host_network: bool,
    /// Changes by later admission plugins, then landgate again.
    pub later: Vec<Edit>,
}

impl PodModel {
    pub fn case(&self) -> PodCase {
        let namespace = self.namespace.pick(NAMESPACES);
        let mut pod_annotations = annotations(&self.annotations);
        if let Some(status) = &self.status {
            pod_annotations.insert(derive::STATUS.to_owned(), status.annotation());
        }
        let mut spec = PodSpec {
            init_containers: list(
                few(&self.init_containers)
                    .map(|c| c.container(true))
                    .collect(),
            ),
            containers: few(&self.containers).map(|c| c.container(false)).collect(),
            ephemeral_containers: list(self.ephemeral_mounts.clone()).map(|mounts| {
                vec![EphemeralContainer {
                    name: "debugger".to_owned(),
                    image: Some("busybox".to_owned()),
                    volume_mounts: Some(few(&mounts).map(MountModel::volume_mount).collect()),
                    ..Default::default()
                }]
            }),
            host_network: self.host_network.then_some(true),
            security_context: self.run_as_root.then(|| PodSecurityContext {
                run_as_user: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        };
        for volume in few(&self.volumes) {
            add_volume(&mut spec, volume.volume());
        }
        match self.os {
            None => {}
            Some(Os::Linux) => {
                spec.os = Some(PodOS {
                    name: "linux".to_owned(),
                })
            }
            Some(Os::Windows) => {
                spec.os = Some(PodOS {
                    name: "windows".to_owned(),
                })
            }
            Some(Os::WindowsNodeSelector) => {
                spec.node_selector = Some(BTreeMap::from([(
                    "kubernetes.io/os".to_owned(),
                    "windows".to_owned(),
                )]));
            }
        }
        PodCase {
            namespace_annotations: annotations(&self.namespace_annotations),
            pod: Pod {
                metadata: ObjectMeta {
                    name: Some("p".to_owned()),
                    namespace: Some(namespace.clone()).filter(|n| !n.is_empty()),
                    annotations: list_map(pod_annotations),
                    ..Default::default()
                },
                spec: Some(spec),
                ..Default::default()
            },
            namespace,
        }
    }

    /// `mutated` (landgate's first answer) after the [`Edit`]s, to be
    /// admitted again; `None` without edits.
    pub fn reinvoked(&self, first: &PodCase, mutated: Pod) -> Option<PodCase> {
        if self.later.is_empty() {
            return None;
        }
        let mut pod = mutated;
        for edit in few(&self.later) {
            edit.apply(&mut pod);
        }
        Some(PodCase {
            namespace: first.namespace.clone(),
            namespace_annotations: first.namespace_annotations.clone(),
            pod,
        })
    }
}

fn list_map(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    Some(map).filter(|m| !m.is_empty())
}
