//! Profile → [`Policy`]: what a container may do, from its resolved
//! settings, its spec and the pod's volumes.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{Container, Volume};
use landgate_policy::{AbsPath, FsRules, NetRules, POLICY_VERSION, Policy, Scopes, layout};

use super::annotations::{ContainerSettings, READABLE_PATHS, WRITABLE_PATHS};
use super::mounts::mounts;
use super::ports::bind_ports;
use crate::settings::Profile;

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
    layout::DIR,
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
    layout::DIR,
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

/// The lists above as paths, parsed once rather than per container.
struct Lists {
    protected: Vec<AbsPath>,
    baseline_rw: Vec<AbsPath>,
    baseline_rw_read_only_root: Vec<AbsPath>,
    strict_rx: Vec<AbsPath>,
    strict_devices: Vec<AbsPath>,
}

static LISTS: LazyLock<Lists> = LazyLock::new(|| {
    let parse = |list: &[&'static str]| list.iter().map(|p| abs(p)).collect();
    Lists {
        protected: parse(PROTECTED),
        baseline_rw: parse(BASELINE_RW),
        baseline_rw_read_only_root: parse(BASELINE_RW_READ_ONLY_ROOT),
        strict_rx: parse(STRICT_RX),
        strict_devices: parse(STRICT_DEVICES),
    }
});

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
            let mut rw = if read_only_root {
                LISTS.baseline_rw_read_only_root.clone()
            } else {
                LISTS.baseline_rw.clone()
            };
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
            let mut rx = LISTS.strict_rx.clone();
            rx.extend(entrypoint_rx(container, &mut warn));
            rx.extend(working_dir);
            rx.extend(mounts_ro);
            rx.extend(extra_rx);
            let mut rw = LISTS.strict_devices.clone();
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

/// True when `dir` is, contains or lies beneath a [`PROTECTED`] directory.
fn is_protected(dir: &AbsPath) -> bool {
    LISTS
        .protected
        .iter()
        .any(|p| p.is_within(dir) || (p.as_path() != std::path::Path::new("/") && dir.is_within(p)))
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

/// Parses one of this module's constant paths.
fn abs(path: &'static str) -> AbsPath {
    path.parse()
        .unwrap_or_else(|err| unreachable!("constant path {path}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::fixtures::{paths, settings_for, web};
    use crate::derive::{CONNECT_PORTS, PROFILE};
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, EmptyDirVolumeSource, SecurityContext, VolumeMount,
    };
    use landgate_policy::{Enforcement, PortSet};
    use rstest::rstest;

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
    use std::collections::BTreeMap;

    use super::*;
    use crate::derive::{AnnotationError, Annotations};
    use crate::settings::Settings;
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
