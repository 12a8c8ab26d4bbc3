//! Every rule about what a container may do: landgate annotations (parsing,
//! validation, precedence) and profile → [`Policy`] derivation. Pure.
//!
//! Precedence (DESIGN.md, "Where settings come from"), first match wins:
//!
//! 1. pod annotation with the per-container key, e.g. `landgate.dev/profile.web`;
//! 2. pod annotation, e.g. `landgate.dev/profile`;
//! 3. namespace annotation with the same (pod-wide) key;
//! 4. the webhook's flags ([`Settings`]).
//!
//! Every `landgate.dev/*` annotation is validated whether or not it ends up
//! used: a typo in a security setting must never silently widen what a
//! process may do.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, Volume, VolumeMount};
use landgate_policy::{
    AbsPath, Enforcement, FsRules, NetRules, POLICY_VERSION, Policy, Port, PortSet, Scopes,
};

use crate::settings::{Profile, Settings};

/// The annotation domain landgate owns.
pub const ANNOTATION_PREFIX: &str = "landgate.dev/";
/// `"false"` opts a pod out (pod-wide only: a pod is never half-wrapped).
pub const INJECT: &str = "landgate.dev/inject";
pub const PROFILE: &str = "landgate.dev/profile";
pub const WRITABLE_PATHS: &str = "landgate.dev/writable-paths";
pub const READABLE_PATHS: &str = "landgate.dev/readable-paths";
pub const CONNECT_PORTS: &str = "landgate.dev/connect-ports";
pub const ENFORCEMENT: &str = "landgate.dev/enforcement";
/// `"allow"` lets a container use io_uring although its TCP is restricted
/// (the launcher's `allow_io_uring`; it gives up TCP enforcement).
pub const IO_URING: &str = "landgate.dev/io-uring";
/// Written by the webhook (see `mutate`); never read as a setting.
pub const STATUS: &str = "landgate.dev/status";

/// Where the launcher volume is mounted in every wrapped container. Nothing
/// of the pod may be mounted there or made writable beneath it.
pub const LAUNCHER_DIR: &str = "/landgate";

/// Directories the derivation never makes writable on its own (from a
/// `workingDir`): writing there would let a process replace the programs
/// and configuration it runs with. Volumes mounted there are the volume's
/// business, and an explicit `writable-paths` annotation is the pod
/// author's choice.
const PROTECTED: &[&str] = &[
    "/",
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    LAUNCHER_DIR,
];

/// baseline: writable on a writable root filesystem.
const BASELINE_RW: &[&str] = &[
    "/tmp",
    "/var/tmp",
    "/dev",
    "/dev/shm",
    "/proc",
    "/run",
    "/var/run",
    "/var/cache",
    "/var/log",
    "/var/lib",
    "/home",
    "/root",
];
/// baseline with `readOnlyRootFilesystem`: only the kernel filesystems stay
/// writable (the rest of the root filesystem cannot be written anyway).
const BASELINE_RW_READ_ONLY_ROOT: &[&str] = &["/dev", "/dev/shm", "/proc"];

/// strict: what a dynamically linked program needs to start, plus `/proc`
/// (Go, the JVM and glibc read their own process files) and the launcher dir
/// (wrapped `sh`, `python`… found through PATH live there). Not
/// `/proc/self`: the launcher would open it as `/proc/<its pid>`, so every
/// child (nginx workers, shell pipelines) would be denied its own entry; the
/// pod's PID namespace already limits what `/proc` shows.
const STRICT_RX: &[&str] = &[
    "/bin",
    "/usr",
    "/lib",
    "/lib64",
    "/etc",
    "/proc",
    LAUNCHER_DIR,
];
/// strict: writable `/dev/null`-class devices.
const STRICT_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

// === annotations ===

/// The settings a landgate annotation can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Inject,
    Profile,
    WritablePaths,
    ReadablePaths,
    ConnectPorts,
    Enforcement,
    IoUring,
}

impl Key {
    pub const ALL: &'static [Key] = &[
        Key::Inject,
        Key::Profile,
        Key::WritablePaths,
        Key::ReadablePaths,
        Key::ConnectPorts,
        Key::Enforcement,
        Key::IoUring,
    ];

    /// The full annotation key (without a container suffix).
    pub fn as_str(self) -> &'static str {
        match self {
            Key::Inject => INJECT,
            Key::Profile => PROFILE,
            Key::WritablePaths => WRITABLE_PATHS,
            Key::ReadablePaths => READABLE_PATHS,
            Key::ConnectPorts => CONNECT_PORTS,
            Key::Enforcement => ENFORCEMENT,
            Key::IoUring => IO_URING,
        }
    }

    fn from_suffix(suffix: &str) -> Option<Self> {
        Key::ALL
            .iter()
            .copied()
            .find(|k| k.as_str().strip_prefix(ANNOTATION_PREFIX) == Some(suffix))
    }

    fn per_container(self) -> bool {
        self != Key::Inject
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a resolved setting came from; error messages and warnings name it so
/// that the reader knows what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A pod annotation (the full key, container suffix included).
    Pod(String),
    /// An annotation on the pod's namespace.
    Namespace { namespace: String, key: String },
    /// A webhook flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Pod(key) => write!(f, "pod annotation {key}"),
            Origin::Namespace { namespace, key } => {
                write!(f, "annotation {key} on namespace {namespace}")
            }
            Origin::Flag(flag) => write!(f, "webhook flag {flag}"),
        }
    }
}

/// An annotation value that cannot be used; the pod is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("{origin} has invalid value {value:?}: {reason}; {fix}")]
    InvalidValue {
        origin: Origin,
        value: String,
        reason: String,
        fix: String,
    },
    #[error(
        "{origin} is not a landgate setting: landgate reads {known} (optionally with .<container-name> appended); fix the typo or remove it{where_}"
    )]
    UnknownKey {
        origin: Origin,
        known: String,
        where_: String,
    },
    #[error(
        "{origin} names container {container:?}, which this pod does not have (containers: {containers}); fix the container name after the dot"
    )]
    UnknownContainer {
        origin: Origin,
        container: String,
        containers: String,
    },
    #[error(
        "{origin}: {key} applies to the whole pod and takes no .<container-name> suffix (a pod is wrapped entirely or not at all){where_}"
    )]
    NotPerContainer {
        origin: Origin,
        key: Key,
        where_: String,
    },
}

/// A validated annotation value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Setting {
    Inject(bool),
    Profile(Profile),
    Paths(Vec<AbsPath>),
    Ports(PortSet),
    Enforcement(Enforcement),
    IoUring(bool),
}

/// The validated landgate annotations of a pod and its namespace.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    /// (key, container) → (value, origin) from the pod.
    pod: BTreeMap<(Key, Option<String>), (Setting, Origin)>,
    /// key → (value, origin) from the namespace.
    namespace: BTreeMap<Key, (Setting, Origin)>,
}

/// The settings of one container after precedence.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSettings {
    pub profile: Profile,
    pub profile_origin: Origin,
    pub enforcement: Enforcement,
    pub enforcement_origin: Origin,
    /// Extra writable paths (`landgate.dev/writable-paths`), with origin.
    pub writable_paths: Option<(Vec<AbsPath>, Origin)>,
    /// Extra readable paths (`landgate.dev/readable-paths`), with origin.
    pub readable_paths: Option<(Vec<AbsPath>, Origin)>,
    /// `None` = connect unrestricted.
    pub connect_ports: Option<PortSet>,
    /// Where io_uring was allowed (`landgate.dev/io-uring: allow`); `None`
    /// = refused whenever TCP is restricted.
    pub allow_io_uring: Option<Origin>,
}

impl Annotations {
    /// Parses and validates every `landgate.dev/*` annotation of the pod and
    /// its namespace. `containers` are all the pod's container names (init
    /// and app), for checking per-container keys.
    pub fn parse(
        pod: &BTreeMap<String, String>,
        namespace: &str,
        namespace_annotations: &BTreeMap<String, String>,
        containers: &[&str],
    ) -> Result<Self, AnnotationError> {
        let mut parsed = Annotations::default();
        for (full_key, value) in pod {
            let Some(suffix) = full_key.strip_prefix(ANNOTATION_PREFIX) else {
                continue;
            };
            if full_key == STATUS {
                continue;
            }
            let origin = Origin::Pod(full_key.clone());
            let (name, container) = match suffix.split_once('.') {
                Some((name, container)) => (name, Some(container)),
                None => (suffix, None),
            };
            let Some(key) = Key::from_suffix(name) else {
                return Err(unknown_key(origin, " from the pod"));
            };
            if let Some(container) = container {
                if !key.per_container() {
                    return Err(AnnotationError::NotPerContainer {
                        origin,
                        key,
                        where_: "; remove the suffix".into(),
                    });
                }
                if !containers.contains(&container) {
                    return Err(AnnotationError::UnknownContainer {
                        origin,
                        container: container.to_owned(),
                        containers: containers.join(", "),
                    });
                }
            }
            let setting = parse_value(key, value, &origin, "the pod")?;
            parsed
                .pod
                .insert((key, container.map(str::to_owned)), (setting, origin));
        }
        for (full_key, value) in namespace_annotations {
            let Some(suffix) = full_key.strip_prefix(ANNOTATION_PREFIX) else {
                continue;
            };
            let origin = Origin::Namespace {
                namespace: namespace.to_owned(),
                key: full_key.clone(),
            };
            let where_ = format!(" from namespace {namespace}");
            let (name, container) = match suffix.split_once('.') {
                Some((name, container)) => (name, Some(container)),
                None => (suffix, None),
            };
            let Some(key) = Key::from_suffix(name) else {
                return Err(unknown_key(origin, &where_));
            };
            if container.is_some() {
                // Container names are only meaningful within one pod.
                return Err(AnnotationError::NotPerContainer {
                    origin,
                    key,
                    where_: format!(
                        " on a namespace; per-container keys belong on the pod. Remove the suffix{where_}"
                    ),
                });
            }
            let place = format!("namespace {namespace}");
            let setting = parse_value(key, value, &origin, &place)?;
            parsed.namespace.insert(key, (setting, origin));
        }
        Ok(parsed)
    }

    fn lookup(&self, key: Key, container: Option<&str>) -> Option<&(Setting, Origin)> {
        container
            .and_then(|c| self.pod.get(&(key, Some(c.to_owned()))))
            .or_else(|| self.pod.get(&(key, None)))
            .or_else(|| self.namespace.get(&key))
    }

    /// `Some(origin)` when the pod (or its namespace) opts out with
    /// `landgate.dev/inject: "false"`.
    pub fn opt_out(&self) -> Option<&Origin> {
        match self.lookup(Key::Inject, None) {
            Some((Setting::Inject(false), origin)) => Some(origin),
            _ => None,
        }
    }

    /// The settings for container `name` after precedence.
    pub fn for_container(&self, settings: &Settings, name: &str) -> ContainerSettings {
        let (profile, profile_origin) = match self.lookup(Key::Profile, Some(name)) {
            Some((Setting::Profile(p), origin)) => (*p, origin.clone()),
            _ => (settings.default_profile, Origin::Flag("--default-profile")),
        };
        let (enforcement, enforcement_origin) = match self.lookup(Key::Enforcement, Some(name)) {
            Some((Setting::Enforcement(e), origin)) => (*e, origin.clone()),
            _ => (
                settings.default_enforcement,
                Origin::Flag("--default-enforcement"),
            ),
        };
        let paths = |key| match self.lookup(key, Some(name)) {
            Some((Setting::Paths(paths), origin)) => Some((paths.clone(), origin.clone())),
            _ => None,
        };
        let connect_ports = match self.lookup(Key::ConnectPorts, Some(name)) {
            Some((Setting::Ports(ports), _)) => Some(ports.clone()),
            _ => None,
        };
        let allow_io_uring = match self.lookup(Key::IoUring, Some(name)) {
            Some((Setting::IoUring(true), origin)) => Some(origin.clone()),
            _ => None,
        };
        ContainerSettings {
            profile,
            profile_origin,
            enforcement,
            enforcement_origin,
            writable_paths: paths(Key::WritablePaths),
            readable_paths: paths(Key::ReadablePaths),
            connect_ports,
            allow_io_uring,
        }
    }
}

fn unknown_key(origin: Origin, where_: &str) -> AnnotationError {
    AnnotationError::UnknownKey {
        origin,
        known: Key::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        where_: where_.to_owned(),
    }
}

fn parse_value(
    key: Key,
    value: &str,
    origin: &Origin,
    place: &str,
) -> Result<Setting, AnnotationError> {
    let invalid = |reason: String| AnnotationError::InvalidValue {
        origin: origin.clone(),
        value: value.to_owned(),
        reason,
        fix: format!("fix or remove the annotation on {place}"),
    };
    match key {
        Key::Inject => match value.trim() {
            "false" => Ok(Setting::Inject(false)),
            "true" | "enabled" => Ok(Setting::Inject(true)),
            _ => Err(invalid(
                "expected \"false\" (opt out) or \"true\"".to_owned(),
            )),
        },
        Key::Profile => value.trim().parse().map(Setting::Profile).map_err(invalid),
        Key::IoUring => match value.trim() {
            "allow" => Ok(Setting::IoUring(true)),
            "deny" => Ok(Setting::IoUring(false)),
            _ => Err(invalid(
                "expected \"allow\" (gives up TCP enforcement for io_uring users) or \"deny\" (the default)"
                    .to_owned(),
            )),
        },
        Key::Enforcement => value
            .trim()
            .parse()
            .map(Setting::Enforcement)
            .map_err(|e| invalid(e.to_string())),
        Key::WritablePaths | Key::ReadablePaths => {
            let mut paths = Vec::new();
            for item in split_list(value) {
                let path: AbsPath = item.parse().map_err(|e| invalid(format!("{e}")))?;
                if in_launcher_dir(&path) {
                    return Err(invalid(format!(
                        "{path} is landgate's launcher directory, which stays read-only"
                    )));
                }
                paths.push(path);
            }
            Ok(Setting::Paths(paths))
        }
        // An empty list is meaningful: no TCP connect at all.
        Key::ConnectPorts => split_list(value)
            .map(|item| {
                item.parse::<Port>().map_err(|e| {
                    invalid(format!(
                        "{e} (write comma-separated port numbers, e.g. \"53,443\")"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|ports| Setting::Ports(ports.into_iter().collect())),
    }
}

/// Comma-separated items, trimmed; empty items (a trailing comma) skipped.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// True when `path` is the launcher directory or lies beneath it: nothing
/// of the pod may be mounted there or made writable there. Compares whole
/// components, so `/landgatex` is not beneath it.
pub fn in_launcher_dir(path: impl AsRef<std::path::Path>) -> bool {
    path.as_ref().starts_with(LAUNCHER_DIR)
}

/// Parses one of this module's constant paths.
fn abs(path: &'static str) -> AbsPath {
    path.parse()
        .unwrap_or_else(|err| unreachable!("constant path {path}: {err}"))
}

// === policy derivation ===

/// A container's policy and the degraded choices made while deriving it.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub policy: Policy,
    /// Human-readable, already prefixed with `container "name": `.
    pub warnings: Vec<String>,
}

/// Derives the policy of `container` (whose `command` is the original,
/// unwrapped one) from its profile and the pod's volumes.
pub fn derive_policy(
    settings: &ContainerSettings,
    container: &Container,
    volumes: &[Volume],
) -> Derived {
    let mut warnings = Vec::new();
    let name = &container.name;
    let mut warn = |message: String| warnings.push(format!("container {name:?}: {message}"));

    let bind = bind_ports(container, &mut warn);
    if let Some(origin) = &settings.allow_io_uring {
        // bind is always restricted (to the declared ports), so this always
        // costs TCP enforcement.
        warn(format!(
            "{origin} = allow: io_uring can create MPTCP sockets and send TCP Fast Open data that Landlock's TCP rules do not see, so this container's bind and connect rules can be bypassed (its status reads PartiallyEnforced)"
        ));
    }
    let read_only_root = container
        .security_context
        .as_ref()
        .and_then(|sc| sc.read_only_root_filesystem)
        .unwrap_or(false);
    let (mounts_rw, mounts_ro) = mounts(container, volumes, &mut warn);
    let working_dir = container.working_dir.as_deref().and_then(|dir| {
        dir.parse::<AbsPath>()
            .map_err(|e| warn(format!("workingDir {dir:?} ignored: {e}")))
            .ok()
    });
    let extra_rw = settings
        .writable_paths
        .as_ref()
        .map(|(p, _)| p.clone())
        .unwrap_or_default();
    let extra_rx = settings
        .readable_paths
        .as_ref()
        .map(|(p, _)| p.clone())
        .unwrap_or_default();

    let (fs, scope) = match settings.profile {
        Profile::Baseline => {
            if let Some((_, origin)) = &settings.readable_paths {
                warn(format!(
                    "{origin} has no effect under profile baseline, which may read everything"
                ));
            }
            let defaults = if read_only_root {
                BASELINE_RW_READ_ONLY_ROOT
            } else {
                BASELINE_RW
            };
            let mut rw: Vec<AbsPath> = defaults.iter().map(|p| abs(p)).collect();
            rw.extend(mounts_rw);
            if let Some(dir) = working_dir {
                if read_only_root {
                    // Writable only if a volume is mounted there (then it
                    // is already in the list).
                } else if is_protected(&dir) {
                    warn(format!(
                        "workingDir {dir} is not made writable: it is, holds or lies in a system directory (writes to /etc, /usr, /bin, /sbin, /lib*, /opt stay denied under baseline); mount a writable volume there or list the path in {WRITABLE_PATHS}"
                    ));
                } else {
                    rw.push(dir);
                }
            }
            rw.extend(extra_rw);
            (Some(normalise(vec![abs("/")], rw)), Scopes::default())
        }
        Profile::Strict => {
            let mut rx: Vec<AbsPath> = STRICT_RX.iter().map(|p| abs(p)).collect();
            rx.extend(entrypoint_rx(container, &mut warn));
            rx.extend(working_dir);
            rx.extend(mounts_ro);
            rx.extend(extra_rx);
            let mut rw: Vec<AbsPath> = STRICT_DEVICES.iter().map(|p| abs(p)).collect();
            if !read_only_root {
                rw.push(abs("/tmp"));
            }
            rw.extend(mounts_rw);
            rw.extend(extra_rw);
            (Some(normalise(rx, rw)), Scopes::ALL)
        }
        Profile::PortsOnly => {
            for (_, origin) in [&settings.writable_paths, &settings.readable_paths]
                .into_iter()
                .flatten()
            {
                warn(format!(
                    "{origin} has no effect under profile ports-only, which sets no filesystem rules"
                ));
            }
            (None, Scopes::default())
        }
    };

    Derived {
        policy: Policy {
            v: POLICY_VERSION,
            enforcement: settings.enforcement,
            fs,
            net: NetRules {
                bind: Some(bind),
                connect: settings.connect_ports.clone(),
                bind_ephemeral: true,
            },
            scope,
            quiet: false,
            log_denials: true,
            allow_io_uring: settings.allow_io_uring.is_some(),
        },
        warnings,
    }
}

/// What the directories of a container's PATH let sandboxed code do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PathDirs {
    /// Directories `fs` or another container can write: sandboxed code could
    /// plant a program there that a later `kubectl exec … <name>` of a
    /// program outside the wrapper list runs unsandboxed.
    pub writable: Vec<AbsPath>,
    /// Entries that cannot be judged at admission: empty (the working
    /// directory), relative, with `..`, or still to be expanded by the
    /// kubelet (`$(VAR)`).
    pub unjudged: Vec<String>,
}

/// Sorts the entries of `path` (a PATH value as the container gets it,
/// without landgate's own `/landgate/bin`). `also_writable` are paths other
/// containers of the pod can write (a shared volume mounted read-only here).
pub fn path_dirs(fs: &FsRules, also_writable: &[AbsPath], path: &str) -> PathDirs {
    let mut dirs = PathDirs::default();
    for entry in path.split(':') {
        if entry.contains("$(") {
            dirs.unjudged.push(entry.to_owned());
            continue;
        }
        let Ok(dir) = entry.parse::<AbsPath>() else {
            dirs.unjudged.push(entry.to_owned());
            continue;
        };
        let writable = !in_launcher_dir(&dir)
            && fs
                .rw
                .iter()
                .chain(also_writable)
                .any(|rw| dir.is_within(rw));
        if writable && !dirs.writable.contains(&dir) {
            dirs.writable.push(dir);
        }
    }
    dirs
}

/// True when `dir` is, contains or lies beneath a [`PROTECTED`] directory.
fn is_protected(dir: &AbsPath) -> bool {
    PROTECTED.iter().map(|p| abs(p)).any(|p| {
        p.is_within(dir) || (p.as_path() != std::path::Path::new("/") && dir.is_within(&p))
    })
}

/// TCP `containerPorts`, sorted and deduplicated; other protocols are
/// reported, since Landlock's network rules cover TCP only.
fn bind_ports(container: &Container, warn: &mut impl FnMut(String)) -> PortSet {
    let mut ports = Vec::new();
    for (i, port) in container.ports.iter().flatten().enumerate() {
        let label = port
            .name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        let Ok(number) = Port::try_from(port.container_port) else {
            warn(format!(
                "ports[{i}].containerPort {} is not a port number and is ignored",
                port.container_port
            ));
            continue;
        };
        if protocol == "TCP" {
            ports.push(number);
        } else {
            warn(format!(
                "port {number}/{protocol}{label} cannot be restricted: Landlock's network rules cover TCP only, so {protocol} traffic is not sandboxed"
            ));
        }
    }
    ports.into_iter().collect()
}

/// The container's volume mounts, split into writable and read-only.
/// configMap, secret, downwardAPI, projected and image volumes are always
/// mounted read-only by the kubelet, whatever the mount says.
fn mounts(
    container: &Container,
    volumes: &[Volume],
    warn: &mut impl FnMut(String),
) -> (Vec<AbsPath>, Vec<AbsPath>) {
    let (mut rw, mut ro) = (Vec::new(), Vec::new());
    for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
        // The engine refuses a wrapped pod whose mountPath does not
        // normalise, before anything is derived; a direct caller is told.
        let path = match crate::mount_path::normalise(&mount.mount_path) {
            Ok(path) => path,
            Err(err) => {
                warn(format!("volumeMounts[{i}].mountPath ignored: it {err}"));
                continue;
            }
        };
        if in_launcher_dir(&path) {
            // landgate's own mount (the engine refuses every other one).
            continue;
        }
        if !mounts_writable(mount, volumes) {
            ro.push(path);
        } else {
            rw.push(path);
        }
    }
    (rw, ro)
}

/// True when `mount` lets its container write: not `readOnly`, and not a
/// configMap, secret, downwardAPI, projected or image volume, which the
/// kubelet always mounts read-only whatever the mount says.
pub fn mounts_writable(mount: &VolumeMount, volumes: &[Volume]) -> bool {
    let always_read_only = volumes
        .iter()
        .find(|v| v.name == mount.name)
        .is_some_and(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
                || v.image.is_some()
        });
    !mount.read_only.unwrap_or(false) && !always_read_only
}

/// strict: the entrypoint's directory (or the entrypoint itself when it
/// lives in `/`, as in `FROM scratch` images: read-execute on `/` would
/// undo the profile).
fn entrypoint_rx(container: &Container, warn: &mut impl FnMut(String)) -> Option<AbsPath> {
    let entrypoint = container.command.as_ref()?.first()?;
    match entrypoint.parse::<AbsPath>() {
        Ok(path) => match path.as_path().parent() {
            Some(parent) if parent != std::path::Path::new("/") => {
                parent.to_str().and_then(|p| p.parse().ok())
            }
            _ => Some(path),
        },
        Err(_) => {
            warn(format!(
                "entrypoint {entrypoint:?} is looked up on PATH: under profile strict it runs only if found beneath {} or a path in {READABLE_PATHS}",
                STRICT_RX.join(", ")
            ));
            None
        }
    }
}

/// Sorted, without entries beneath another entry of the same list, and
/// without read-execute entries beneath a writable one (full access covers
/// read and execute).
fn normalise(rx: Vec<AbsPath>, rw: Vec<AbsPath>) -> FsRules {
    let rw = minimal(rw);
    let rx = minimal(rx)
        .into_iter()
        .filter(|p| !rw.iter().any(|w| p.is_within(w)))
        .collect();
    FsRules { rx, rw }
}

fn minimal(mut paths: Vec<AbsPath>) -> Vec<AbsPath> {
    paths.sort();
    paths.dedup();
    let mut kept: Vec<AbsPath> = Vec::with_capacity(paths.len());
    for path in paths {
        // Sorted order puts a parent before its children.
        if !kept.iter().any(|k| path.is_within(k)) {
            kept.push(path);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, ContainerPort, EmptyDirVolumeSource, SecurityContext, VolumeMount,
    };
    use rstest::rstest;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn paths(list: &[&str]) -> Vec<AbsPath> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    fn parse(pod: &[(&str, &str)], ns: &[(&str, &str)]) -> Result<Annotations, AnnotationError> {
        Annotations::parse(&map(pod), "shop", &map(ns), &["web", "side"])
    }

    fn web() -> Container {
        Container {
            name: "web".into(),
            command: Some(vec!["/usr/sbin/nginx".into()]),
            ports: Some(vec![ContainerPort {
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn settings_for(pod: &[(&str, &str)]) -> ContainerSettings {
        parse(pod, &[])
            .unwrap()
            .for_container(&Settings::default(), "web")
    }

    #[test]
    fn precedence_container_key_then_pod_then_namespace_then_flag() {
        let s = Settings::default();
        let ns = [(PROFILE, "ports-only"), (ENFORCEMENT, "required")];
        let a = parse(
            &[
                (PROFILE, "strict"),
                ("landgate.dev/profile.web", "baseline"),
            ],
            &ns,
        )
        .unwrap();
        let web = a.for_container(&s, "web");
        assert_eq!(web.profile, Profile::Baseline);
        assert_eq!(
            web.profile_origin,
            Origin::Pod("landgate.dev/profile.web".into())
        );
        assert_eq!(a.for_container(&s, "side").profile, Profile::Strict);
        assert_eq!(web.enforcement, Enforcement::Required);
        assert_eq!(
            web.enforcement_origin.to_string(),
            "annotation landgate.dev/enforcement on namespace shop"
        );
        let none = parse(&[], &[]).unwrap().for_container(&s, "web");
        assert_eq!(none.profile, Profile::Baseline);
        assert_eq!(
            none.enforcement_origin,
            Origin::Flag("--default-enforcement")
        );
        let ns_only = parse(&[], &ns).unwrap().for_container(&s, "web");
        assert_eq!(ns_only.profile, Profile::PortsOnly);
    }

    #[rstest]
    #[case(ENFORCEMENT, "bogus", "expected best-effort or required")]
    #[case(PROFILE, "paranoid", "expected one of baseline, strict, ports-only")]
    #[case(INJECT, "no", "expected \"false\"")]
    #[case(CONNECT_PORTS, "443,https", "port https is out of range")]
    #[case(CONNECT_PORTS, "70000", "port 70000 is out of range")]
    #[case(WRITABLE_PATHS, "/data,cache", "\"cache\" is relative")]
    #[case(READABLE_PATHS, "/srv/../etc", "`..`")]
    #[case(WRITABLE_PATHS, "/landgate/bin", "launcher directory")]
    fn invalid_values_name_key_and_value(
        #[case] key: &str,
        #[case] value: &str,
        #[case] reason: &str,
    ) {
        let err = parse(&[(key, value)], &[]).unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
        assert!(err.contains(&format!("{value:?}")), "{err}");
        assert!(err.contains(reason), "{err}");
        assert!(err.contains("on the pod"), "{err}");
        let err = parse(&[], &[(key, value)]).unwrap_err().to_string();
        assert!(err.contains("namespace shop"), "{err}");
    }

    #[test]
    fn unknown_keys_and_containers_are_refused() {
        let err = parse(&[("landgate.dev/conect-ports", "443")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("landgate.dev/conect-ports"), "{err}");
        assert!(err.contains("landgate.dev/connect-ports"), "{err}");
        let err = parse(&[("landgate.dev/connect-ports.wbe", "443")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"wbe\"") && err.contains("web, side"),
            "{err}"
        );
        let err = parse(&[("landgate.dev/inject.web", "false")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("whole pod"), "{err}");
        let err = parse(&[], &[("landgate.dev/profile.web", "strict")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("belong on the pod"), "{err}");
        // Other domains and the status annotation are not settings.
        assert!(parse(&[("example.com/x", "y"), (STATUS, "{}")], &[]).is_ok());
    }

    #[test]
    fn opt_out() {
        assert!(
            parse(&[(INJECT, "false")], &[])
                .unwrap()
                .opt_out()
                .is_some()
        );
        assert!(parse(&[(INJECT, "true")], &[]).unwrap().opt_out().is_none());
        assert!(
            parse(&[], &[(INJECT, "false")])
                .unwrap()
                .opt_out()
                .is_some()
        );
        assert!(
            parse(&[(INJECT, "true")], &[(INJECT, "false")])
                .unwrap()
                .opt_out()
                .is_none()
        );
    }

    #[test]
    fn connect_ports_sorted_deduped_and_empty_means_none() {
        assert_eq!(
            settings_for(&[(CONNECT_PORTS, " 5432, 53,443,53,")]).connect_ports,
            Some(PortSet::from([53, 443, 5432]))
        );
        assert_eq!(
            settings_for(&[(CONNECT_PORTS, "")]).connect_ports,
            Some(PortSet::from([]))
        );
        assert_eq!(settings_for(&[]).connect_ports, None);
    }

    #[test]
    fn baseline_policy() {
        let mut c = web();
        c.working_dir = Some("/srv/app".into());
        c.volume_mounts = Some(vec![
            VolumeMount {
                name: "cache".into(),
                mount_path: "/var/cache/nginx".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "conf".into(),
                mount_path: "/etc/nginx/conf.d".into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]);
        let derived = derive_policy(&settings_for(&[(WRITABLE_PATHS, "/srv/uploads")]), &c, &[]);
        assert_eq!(derived.warnings, Vec::<String>::new());
        let fs = derived.policy.fs.unwrap();
        assert_eq!(fs.rx, paths(&["/"]));
        assert_eq!(
            fs.rw,
            paths(&[
                "/data",
                "/dev",
                "/home",
                "/proc",
                "/root",
                "/run",
                "/srv/app",
                "/srv/uploads",
                "/tmp",
                "/var/cache",
                "/var/lib",
                "/var/log",
                "/var/run",
                "/var/tmp",
            ])
        );
        assert_eq!(derived.policy.net.bind, Some(PortSet::from([8080])));
        assert_eq!(derived.policy.net.connect, None);
        assert!(derived.policy.scope.is_none());
        assert_eq!(derived.policy.enforcement, Enforcement::BestEffort);
    }

    #[test]
    fn baseline_honours_read_only_root_filesystem() {
        let mut c = web();
        c.working_dir = Some("/srv/app".into());
        c.security_context = Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            ..Default::default()
        });
        c.volume_mounts = Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        }]);
        let fs = derive_policy(&settings_for(&[]), &c, &[])
            .policy
            .fs
            .unwrap();
        assert_eq!(fs.rw, paths(&["/dev", "/proc", "/tmp"]));
    }

    #[rstest]
    #[case("/")]
    #[case("/usr")]
    #[case("/usr/src/app")]
    #[case("/opt")]
    fn baseline_never_opens_system_dirs_through_working_dir(#[case] dir: &str) {
        let mut c = web();
        c.working_dir = Some(dir.into());
        let derived = derive_policy(&settings_for(&[]), &c, &[]);
        let fs = derived.policy.fs.unwrap();
        assert!(!fs.rw.iter().any(|p| p.to_string() == dir), "{fs:?}");
        assert!(derived.warnings[0].contains("is not made writable"));
    }

    #[test]
    fn strict_policy() {
        let mut c = web();
        c.working_dir = Some("/srv".into());
        c.volume_mounts = Some(vec![
            VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "conf".into(),
                mount_path: "/config".into(),
                ..Default::default()
            },
        ]);
        let volumes = [
            Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
            Volume {
                name: "conf".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "nginx".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        let settings = settings_for(&[
            (PROFILE, "strict"),
            (READABLE_PATHS, "/usr/share/nginx,/opt/app"),
            (CONNECT_PORTS, "443"),
        ]);
        let derived = derive_policy(&settings, &c, &volumes);
        assert_eq!(derived.warnings, Vec::<String>::new());
        let fs = derived.policy.fs.unwrap();
        // /usr/sbin (entrypoint dir) and /usr/share/nginx fold into /usr.
        assert_eq!(
            fs.rx,
            paths(&[
                "/bin",
                "/config",
                "/etc",
                "/landgate",
                "/lib",
                "/lib64",
                "/opt/app",
                "/proc",
                "/srv",
                "/usr"
            ])
        );
        assert_eq!(
            fs.rw,
            paths(&[
                "/data",
                "/dev/full",
                "/dev/null",
                "/dev/random",
                "/dev/tty",
                "/dev/urandom",
                "/dev/zero",
                "/tmp"
            ])
        );
        assert_eq!(derived.policy.scope, Scopes::ALL);
        assert_eq!(derived.policy.net.connect, Some(PortSet::from([443])));
    }

    #[test]
    fn strict_entrypoint_in_root_allows_only_the_file() {
        let mut c = web();
        c.command = Some(vec!["/manager".into()]);
        let settings = settings_for(&[(PROFILE, "strict")]);
        let fs = derive_policy(&settings, &c, &[]).policy.fs.unwrap();
        assert!(fs.rx.contains(&"/manager".parse().unwrap()));
        assert!(!fs.rx.contains(&"/".parse().unwrap()));
        c.command = Some(vec!["nginx".into()]);
        let derived = derive_policy(&settings, &c, &[]);
        assert!(
            derived.warnings[0].contains("looked up on PATH"),
            "{derived:?}"
        );
    }

    #[test]
    fn ports_only_has_no_fs_rules_and_reports_useless_paths() {
        let derived = derive_policy(
            &settings_for(&[(PROFILE, "ports-only"), (WRITABLE_PATHS, "/data")]),
            &web(),
            &[],
        );
        assert_eq!(derived.policy.fs, None);
        assert_eq!(derived.policy.net.bind, Some(PortSet::from([8080])));
        assert!(derived.warnings[0].contains("no effect under profile ports-only"));
    }

    #[test]
    fn ports_tcp_deduped_named_and_udp_reported() {
        let mut c = web();
        let port = |n: i32, proto: Option<&str>, name: Option<&str>| ContainerPort {
            container_port: n,
            protocol: proto.map(Into::into),
            name: name.map(Into::into),
            ..Default::default()
        };
        c.ports = Some(vec![
            port(8080, None, Some("http")),
            port(8080, Some("TCP"), Some("http-alt")),
            port(53, Some("UDP"), Some("dns")),
            port(9000, Some("SCTP"), None),
            port(443, Some("TCP"), Some("https")),
            port(70000, None, None),
        ]);
        let derived = derive_policy(&settings_for(&[]), &c, &[]);
        assert_eq!(derived.policy.net.bind, Some(PortSet::from([443, 8080])));
        assert_eq!(derived.warnings.len(), 3, "{:?}", derived.warnings);
        assert!(derived.warnings[0].starts_with("container \"web\": port 53/UDP (dns)"));
        assert!(derived.warnings[1].contains("9000/SCTP"));
        assert!(derived.warnings[2].contains("70000"));
    }

    #[test]
    fn no_ports_means_no_bind() {
        let mut c = web();
        c.ports = None;
        let policy = derive_policy(&settings_for(&[]), &c, &[]).policy;
        assert_eq!(policy.net.bind, Some(PortSet::from([])));
        assert_eq!(policy.net.effective_bind(), Some(PortSet::from([0])));
    }

    #[test]
    fn normalise_folds_nested_paths() {
        let fs = normalise(
            paths(&["/usr", "/usr/lib", "/data/x", "/etc"]),
            paths(&["/data", "/tmp", "/tmp/a", "/tmp"]),
        );
        assert_eq!(fs.rx, paths(&["/etc", "/usr"]));
        assert_eq!(fs.rw, paths(&["/data", "/tmp"]));
    }
}

#[cfg(test)]
mod io_uring_tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn web() -> Container {
        Container {
            name: "web".into(),
            command: Some(vec!["/usr/bin/app".into()]),
            ports: Some(vec![ContainerPort {
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn settings(pod: &[(&str, &str)]) -> Result<ContainerSettings, AnnotationError> {
        let pod = pod
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Annotations::parse(&pod, "shop", &BTreeMap::new(), &["web"])
            .map(|a| a.for_container(&Settings::default(), "web"))
    }

    #[test]
    fn io_uring_is_refused_by_default_and_allowed_only_by_annotation_with_a_warning() {
        let derived = derive_policy(&settings(&[]).unwrap(), &web(), &[]);
        assert!(!derived.policy.allow_io_uring);
        assert!(derived.warnings.is_empty(), "{:?}", derived.warnings);

        let allowed = settings(&[("landgate.dev/io-uring.web", "allow")]).unwrap();
        let derived = derive_policy(&allowed, &web(), &[]);
        assert!(derived.policy.allow_io_uring);
        assert!(derived.policy.to_json().contains("\"allow_io_uring\":true"));
        assert_eq!(derived.warnings.len(), 1);
        assert!(
            derived.warnings[0]
                .contains("pod annotation landgate.dev/io-uring.web = allow: io_uring can create MPTCP sockets"),
            "{}",
            derived.warnings[0]
        );

        let denied = settings(&[("landgate.dev/io-uring", "deny")]).unwrap();
        assert!(!derive_policy(&denied, &web(), &[]).policy.allow_io_uring);

        let err = settings(&[("landgate.dev/io-uring", "yes")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("pod annotation landgate.dev/io-uring has invalid value \"yes\""),
            "{err}"
        );
    }
}
