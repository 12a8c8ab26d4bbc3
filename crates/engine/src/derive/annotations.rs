//! The landgate annotations: their keys, parsing, validation and
//! precedence, resolved once per container into [`ContainerSettings`].
//!
//! Precedence (the contract, `crates/policy/README.md`, "Annotations"), first match wins:
//!
//! 1. pod annotation with the per-container key, e.g. `landgate.dev/profile.web`;
//! 2. pod annotation, e.g. `landgate.dev/profile`;
//! 3. namespace annotation with the same (pod-wide) key;
//! 4. the webhook's flags ([`Settings`]).
//!
//! Namespace annotations are floors as well as defaults: a pod annotation
//! may tighten what its namespace sets, never loosen it, and the namespace
//! decides whether its pods may name paths or opt out. Precedence only
//! picks among values that passed those floors: a pod that would loosen
//! one is refused, never clamped, so what a pod asks for is what it gets.
//! Flags are defaults only.
//!
//! Every `landgate.dev/*` annotation is validated whether or not it ends up
//! used: a typo in a security setting must never silently widen what a
//! process may do.

use std::collections::BTreeMap;
use std::fmt;

use landgate_policy::{AbsPath, Enforcement, Port, PortSet, layout};

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
/// Namespace-only: `"false"` refuses writable and readable paths from pod
/// annotations.
pub const ALLOW_POD_PATHS: &str = "landgate.dev/allow-pod-paths";
/// Namespace-only: `"true"` lets a pod opt out with `landgate.dev/inject:
/// "false"`; without it a pod's opt-out is refused.
pub const ALLOW_OPT_OUT: &str = "landgate.dev/allow-opt-out";
/// `sandboxed` (default) | `deny` | `allow`: what `kubectl exec` and
/// `kubectl attach` into a wrapped pod get (see `exec`).
pub const EXEC: &str = "landgate.dev/exec";
/// Written by the webhook (see `mutate`); never read as a setting.
pub const STATUS: &str = "landgate.dev/status";

/// What `kubectl exec` / `kubectl attach` into a wrapped pod get, least
/// strict first (the order of the namespace floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExecPolicy {
    /// Admitted unchanged, with an audit log line and a metric.
    Allow,
    /// Every exec runs through the launcher, in the container's sandbox.
    Sandboxed,
    /// exec and attach are refused.
    Deny,
}

impl ExecPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Sandboxed => "sandboxed",
            Self::Deny => "deny",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        [Self::Allow, Self::Sandboxed, Self::Deny]
            .into_iter()
            .find(|p| p.as_str() == value.trim())
    }
}

impl fmt::Display for ExecPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    AllowPodPaths,
    AllowOptOut,
    Exec,
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
        Key::AllowPodPaths,
        Key::AllowOptOut,
        Key::Exec,
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
            Key::AllowPodPaths => ALLOW_POD_PATHS,
            Key::AllowOptOut => ALLOW_OPT_OUT,
            Key::Exec => EXEC,
        }
    }

    fn from_suffix(suffix: &str) -> Option<Self> {
        Key::ALL
            .iter()
            .copied()
            .find(|k| k.as_str().strip_prefix(ANNOTATION_PREFIX) == Some(suffix))
    }

    fn per_container(self) -> bool {
        !matches!(self, Key::Inject | Key::Exec)
    }

    /// What the pods of a namespace may do: a pod cannot grant it to itself.
    fn namespace_only(self) -> bool {
        matches!(self, Key::AllowPodPaths | Key::AllowOptOut)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far `profile` confines a container, least first: ports-only <
/// baseline < strict. A pod may only choose a profile at least as confining
/// as its namespace's. The one place that orders profiles.
fn confinement(profile: Profile) -> u8 {
    match profile {
        Profile::PortsOnly => 0,
        Profile::Baseline => 1,
        Profile::Strict => 2,
    }
}

/// The profiles from `floor` on, least confining first.
fn profiles_from(floor: Profile) -> Vec<Profile> {
    let mut profiles: Vec<Profile> = Profile::VALUES
        .iter()
        .filter_map(|p| p.parse().ok())
        .filter(|p| confinement(*p) >= confinement(floor))
        .collect();
    profiles.sort_by_key(|p| confinement(*p));
    profiles
}

/// Where a resolved setting came from; error messages and warnings name it so
/// that the reader knows what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A pod annotation (the full key, container suffix included).
    Pod(String),
    /// A pod label: only `landgate.dev/inject=false`, the opt-out that the
    /// mutating webhook's objectSelector also honours.
    PodLabel(&'static str),
    /// An annotation on the pod's namespace.
    Namespace { namespace: String, key: String },
    /// A webhook flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Pod(key) => write!(f, "pod annotation {key}"),
            Origin::PodLabel(key) => write!(f, "pod label {key}"),
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
    #[error(
        "{origin} = {value:?} is refused: {key} is namespace-only, it says what the pods of a namespace may do, and a pod cannot grant it to itself; remove it from the pod (the namespace's owner sets it on the namespace)"
    )]
    NamespaceOnly {
        origin: Origin,
        key: Key,
        value: String,
    },
    /// Boxed: two origins and their values would make every `Result` of
    /// this type large.
    #[error(transparent)]
    Floor(Box<FloorError>),
}

/// A pod annotation that would loosen what its namespace sets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FloorError {
    #[error(
        "{pod} = {pod_value:?} {loosens} {namespace} = {namespace_value:?}; {rule}, so {namespace_value:?} wins. {fix}"
    )]
    Loosened {
        pod: Origin,
        pod_value: String,
        namespace: Origin,
        namespace_value: String,
        /// How it loosens it: "lowers", "is less confining than", ….
        loosens: String,
        rule: String,
        fix: String,
    },
    #[error(
        "{pod} = {pod_value:?} is refused: {namespace} = \"false\" keeps paths out of pod annotations, so {wins} applies. Remove the pod annotation; the namespace's owner can set {key} on the namespace instead"
    )]
    PodPaths {
        pod: Origin,
        pod_value: String,
        namespace: Origin,
        key: Key,
        /// The namespace's own paths, or none.
        wins: String,
    },
    #[error(
        "{pod} = \"false\" opts the pod out of landgate, but namespace {namespace} does not allow opt-outs ({forbids}; only \"true\" allows them), so the pod is refused rather than admitted unwrapped. Remove it from the pod to have the pod sandboxed, or have the namespace's owner annotate namespace {namespace} with {ALLOW_OPT_OUT}: \"true\""
    )]
    OptOut {
        pod: Origin,
        namespace: String,
        /// The namespace annotation that forbids it, absent or `"false"`.
        forbids: String,
    },
}

impl AnnotationError {
    /// The refusal's metrics label ([`crate::MutateError::reason`]).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Floor(floor) => match **floor {
                FloorError::OptOut { .. } => "opt-out-forbidden",
                FloorError::Loosened { .. } | FloorError::PodPaths { .. } => "namespace-floor",
            },
            Self::NamespaceOnly { .. } => "namespace-floor",
            Self::InvalidValue { .. }
            | Self::UnknownKey { .. }
            | Self::UnknownContainer { .. }
            | Self::NotPerContainer { .. } => "invalid-annotation",
        }
    }
}

impl From<FloorError> for AnnotationError {
    fn from(error: FloorError) -> Self {
        AnnotationError::Floor(Box::new(error))
    }
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
    /// `allow-pod-paths` and `allow-opt-out`.
    Allow(bool),
    Exec(ExecPolicy),
}

/// The value as landgate read it (lists normalised), for messages.
impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
            let items: Vec<String> = items.iter().map(T::to_string).collect();
            f.write_str(&items.join(","))
        }
        match self {
            Setting::Inject(inject) | Setting::Allow(inject) => inject.fmt(f),
            Setting::Profile(profile) => profile.fmt(f),
            Setting::Paths(paths) => list(f, paths),
            Setting::Ports(ports) => list(f, ports.as_slice()),
            Setting::Enforcement(enforcement) => f.write_str(enforcement.as_str()),
            Setting::Exec(exec) => exec.fmt(f),
            Setting::IoUring(true) => f.write_str("allow"),
            Setting::IoUring(false) => f.write_str("deny"),
        }
    }
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
            if key.namespace_only() {
                return Err(AnnotationError::NamespaceOnly {
                    origin,
                    key,
                    value: value.clone(),
                });
            }
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
        parsed.check_floors(namespace)?;
        Ok(parsed)
    }

    /// Adds the pod's opt-out LABEL (`landgate.dev/inject=false`), under the
    /// same namespace rule as the annotation. The mutating webhook's
    /// objectSelector skips such a pod without calling landgate; the
    /// validating webhook has no objectSelector and judges it here. With
    /// the annotation saying `"false"` too, the annotation is the origin
    /// named; with it saying otherwise, the two contradict each other and
    /// the pod is refused (the label alone decides whether the mutating
    /// webhook sees the pod).
    pub fn with_opt_out_label(
        mut self,
        labels: Option<&BTreeMap<String, String>>,
        namespace: &str,
    ) -> Result<Self, AnnotationError> {
        let labelled = labels
            .and_then(|l| l.get(INJECT))
            .is_some_and(|v| v == "false");
        if !labelled {
            return Ok(self);
        }
        match self.pod.get(&(Key::Inject, None)) {
            Some((Setting::Inject(false), _)) => return Ok(self),
            Some((value, origin)) => {
                return Err(AnnotationError::InvalidValue {
                    origin: Origin::PodLabel(INJECT),
                    value: "false".to_owned(),
                    reason: format!("{origin} says \"{value}\", and the two contradict each other"),
                    fix: "remove one of them: the label keeps the mutating webhook from wrapping the pod".to_owned(),
                });
            }
            None => {}
        }
        let (setting, origin) = (Setting::Inject(false), Origin::PodLabel(INJECT));
        self.check_opt_out(&setting, &origin, namespace)?;
        self.pod.insert((Key::Inject, None), (setting, origin));
        Ok(self)
    }

    /// Refuses every pod annotation that would loosen what the namespace
    /// sets, whether or not it ends up used: one outranked by a
    /// per-container key still says what its author meant to allow.
    fn check_floors(&self, namespace: &str) -> Result<(), AnnotationError> {
        for ((key, _), (value, origin)) in &self.pod {
            match key {
                Key::Inject => self.check_opt_out(value, origin, namespace)?,
                Key::Exec if !self.namespace.contains_key(&Key::Exec) => {
                    // Without a namespace value the floor is the default:
                    // only the namespace's owner can allow unsandboxed exec.
                    let floor = Origin::Namespace {
                        namespace: namespace.to_owned(),
                        key: EXEC.to_owned(),
                    };
                    check_floor(value, origin, &Setting::Exec(ExecPolicy::Sandboxed), &floor)?
                }
                Key::WritablePaths | Key::ReadablePaths => {
                    self.check_pod_paths(*key, value, origin)?
                }
                _ => {}
            }
            if let Some((floor, floor_origin)) = self.namespace.get(key) {
                check_floor(value, origin, floor, floor_origin)?;
            }
        }
        Ok(())
    }

    /// A pod opts out only where its namespace allows it, or opts out
    /// itself (the pod's `"false"` then changes nothing).
    fn check_opt_out(
        &self,
        value: &Setting,
        origin: &Origin,
        namespace: &str,
    ) -> Result<(), AnnotationError> {
        let allow = self.namespace.get(&Key::AllowOptOut);
        let allowed = matches!(allow, Some((Setting::Allow(true), _)));
        let namespace_opts_out = matches!(
            self.namespace.get(&Key::Inject),
            Some((Setting::Inject(false), _))
        );
        if *value != Setting::Inject(false) || allowed || namespace_opts_out {
            return Ok(());
        }
        let forbids = match allow {
            Some((value, allow)) => format!("{allow} = \"{value}\""),
            None => format!("annotation {ALLOW_OPT_OUT} is absent from namespace {namespace}"),
        };
        Err(FloorError::OptOut {
            pod: origin.clone(),
            namespace: namespace.to_owned(),
            forbids,
        }
        .into())
    }

    fn check_pod_paths(
        &self,
        key: Key,
        value: &Setting,
        origin: &Origin,
    ) -> Result<(), AnnotationError> {
        let Some((Setting::Allow(false), allow)) = self.namespace.get(&Key::AllowPodPaths) else {
            return Ok(());
        };
        let wins = match self.namespace.get(&key) {
            Some((paths, own)) => format!("the namespace's {own} = \"{paths}\""),
            None => format!("no {key} (the namespace sets none)"),
        };
        Err(FloorError::PodPaths {
            pod: origin.clone(),
            pod_value: value.to_string(),
            namespace: allow.clone(),
            key,
            wins,
        }
        .into())
    }

    fn lookup(&self, key: Key, container: Option<&str>) -> Option<&(Setting, Origin)> {
        container
            .and_then(|c| self.pod.get(&(key, Some(c.to_owned()))))
            .or_else(|| self.pod.get(&(key, None)))
            .or_else(|| self.namespace.get(&key))
    }

    /// `Some(origin)` when the pod (or its namespace) opts out with
    /// `landgate.dev/inject: "false"`. A pod's opt-out that its namespace
    /// does not allow never gets here: [`Annotations::parse`] refuses it.
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

/// A pod value `value` against the namespace's `floor` for the same key:
/// refused if it is less confining.
fn check_floor(
    value: &Setting,
    origin: &Origin,
    floor: &Setting,
    floor_origin: &Origin,
) -> Result<(), AnnotationError> {
    const ENFORCEMENT_RULE: &str = "a namespace's enforcement is a floor that a pod may raise but not lower (best-effort < required)";
    const PORTS_RULE: &str = "a namespace's connect ports are a ceiling that a pod may narrow but not widen (a pod lists a subset of them; \"\" allows none)";
    const IO_URING_RULE: &str =
        "a namespace's io-uring is a floor that a pod may tighten but not loosen (allow < deny)";
    let names = |profiles: Vec<Profile>| -> Vec<&str> {
        profiles.into_iter().map(Profile::as_str).collect()
    };
    let (loosens, rule, fix) = match (value, floor) {
        (Setting::Enforcement(pod), Setting::Enforcement(namespace))
            if (*pod, *namespace) == (Enforcement::BestEffort, Enforcement::Required) =>
        {
            (
                "lowers".to_owned(),
                ENFORCEMENT_RULE.to_owned(),
                "Remove the pod annotation or set it to \"required\"".to_owned(),
            )
        }
        (Setting::Profile(pod), Setting::Profile(namespace))
            if confinement(*pod) < confinement(*namespace) =>
        {
            let order = names(profiles_from(Profile::PortsOnly)).join(" < ");
            (
                "is less confining than".to_owned(),
                format!(
                    "a namespace's profile is a floor that a pod may tighten but not loosen ({order})"
                ),
                format!(
                    "Remove the pod annotation or choose {}",
                    names(profiles_from(*namespace)).join(" or ")
                ),
            )
        }
        (Setting::Ports(pod), Setting::Ports(namespace)) => {
            let Some(port) = pod.iter().find(|p| !namespace.contains(*p)) else {
                return Ok(());
            };
            (
                format!("allows port {port}, which is not in"),
                PORTS_RULE.to_owned(),
                "Remove the pod annotation or list only ports the namespace allows".to_owned(),
            )
        }
        (Setting::IoUring(true), Setting::IoUring(false)) => (
            "loosens".to_owned(),
            IO_URING_RULE.to_owned(),
            "Remove the pod annotation or set it to \"deny\"".to_owned(),
        ),
        (Setting::Exec(pod), Setting::Exec(namespace)) if pod < namespace => (
            "loosens".to_owned(),
            "a namespace's exec is a floor that a pod may tighten but not loosen (allow < sandboxed < deny; a namespace without the annotation is \"sandboxed\", so only the namespace's owner can allow unsandboxed exec)".to_owned(),
            format!("Remove the pod annotation or set it to {namespace:?}", namespace = namespace.as_str()),
        ),
        _ => return Ok(()),
    };
    Err(FloorError::Loosened {
        pod: origin.clone(),
        pod_value: value.to_string(),
        namespace: floor_origin.clone(),
        namespace_value: floor.to_string(),
        loosens,
        rule,
        fix,
    }
    .into())
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
        Key::Exec => ExecPolicy::parse(value).map(Setting::Exec).ok_or_else(|| {
            invalid("expected \"sandboxed\" (the default), \"deny\" or \"allow\"".to_owned())
        }),
        Key::AllowPodPaths | Key::AllowOptOut => match value.trim() {
            "true" => Ok(Setting::Allow(true)),
            "false" => Ok(Setting::Allow(false)),
            _ => Err(invalid("expected \"true\" or \"false\"".to_owned())),
        },
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
                if layout::in_dir(&path) {
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

/// The exec policy of a pod when someone execs into it: the pod's
/// `landgate.dev/exec` and its namespace's, the stricter winning (a
/// namespace tightened after the pod was created wins at once; a pod
/// loosening its namespace was refused at creation). A namespace without
/// the annotation counts as `sandboxed`: only the namespace can grant
/// `allow`. With the origin of the value (`None`: that default).
pub fn exec_policy(
    pod: &BTreeMap<String, String>,
    namespace: &str,
    namespace_annotations: &BTreeMap<String, String>,
) -> Result<(ExecPolicy, Option<Origin>), AnnotationError> {
    let read =
        |value: Option<&String>, origin: Origin, place: &str| -> Result<_, AnnotationError> {
            value
                .map(
                    |value| match parse_value(Key::Exec, value, &origin, place) {
                        Ok(Setting::Exec(policy)) => Ok((policy, Some(origin))),
                        Ok(_) => unreachable!("Key::Exec parses to Setting::Exec"),
                        Err(err) => Err(err),
                    },
                )
                .transpose()
        };
    let from_pod = read(pod.get(EXEC), Origin::Pod(EXEC.to_owned()), "the pod")?;
    let from_namespace = read(
        namespace_annotations.get(EXEC),
        Origin::Namespace {
            namespace: namespace.to_owned(),
            key: EXEC.to_owned(),
        },
        &format!("namespace {namespace}"),
    )?
    .unwrap_or((ExecPolicy::Sandboxed, None));
    Ok(from_pod
        .into_iter()
        .chain([from_namespace])
        .max_by_key(|(policy, _)| *policy)
        .unwrap_or((ExecPolicy::Sandboxed, None)))
}

/// What [`exec_policy`] found, for a message: `<origin> = "deny"`, or the
/// default.
pub fn exec_said(policy: ExecPolicy, origin: Option<&Origin>) -> String {
    match origin {
        Some(origin) => format!("{origin} = {:?}", policy.as_str()),
        None => format!("{EXEC} is {:?} by default", policy.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::fixtures::settings_for;
    use rstest::rstest;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pod: &[(&str, &str)], ns: &[(&str, &str)]) -> Result<Annotations, AnnotationError> {
        Annotations::parse(&map(pod), "shop", &map(ns), &["web", "side"])
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
        let allowed = [(ALLOW_OPT_OUT, "true")];
        assert!(
            parse(&[(INJECT, "false")], &allowed)
                .unwrap()
                .opt_out()
                .is_some()
        );
        // Refused without the namespace's leave (tests/floors.rs).
        assert!(parse(&[(INJECT, "false")], &[]).is_err());
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
    fn profiles_by_confinement() {
        let order: Vec<&str> = profiles_from(Profile::PortsOnly)
            .iter()
            .map(|p| p.as_str())
            .collect();
        assert_eq!(order, ["ports-only", "baseline", "strict"]);
        assert_eq!(profiles_from(Profile::Strict), [Profile::Strict]);
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
}
