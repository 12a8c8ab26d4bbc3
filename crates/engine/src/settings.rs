//! What the operator configured: the lowest layer of the settings precedence
//! (pod annotation > namespace annotation > these flags). Shared by `serve`
//! and `preview` so that a preview shows exactly what the webhook would do.

use std::fmt;
use std::str::FromStr;

use landgate_policy::Enforcement;

/// The launcher image used by the `landgate-init` container.
pub const DEFAULT_LAUNCHER_IMAGE: &str = "ghcr.io/landgate-dev/landgate-launcher:0.1.0";

/// Programs reached through PATH (notably by `kubectl exec pod -- sh`) that
/// get a wrapper symlink in `/landgate/bin`: the launcher's own default.
pub use landgate_policy::wrappers::DEFAULT as DEFAULT_WRAPPERS;

/// The image PATH assumed when a container sets none: the launcher's own
/// fallback, so both halves agree.
pub use landgate_policy::env::DEFAULT_PATH;

/// Engine settings: every flag is also a `LANDGATE_*` environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[cfg_attr(feature = "clap", command(next_help_heading = "Mutation"))]
pub struct Settings {
    /// Image of the `landgate-init` container; it must contain the static
    /// `landgate` launcher at `/usr/local/bin/landgate`.
    #[cfg_attr(feature = "clap", arg(long, env = "LANDGATE_LAUNCHER_IMAGE", default_value = DEFAULT_LAUNCHER_IMAGE))]
    pub launcher_image: String,

    /// Profile for pods without a `landgate.dev/profile` annotation.
    #[cfg_attr(feature = "clap", arg(long, env = "LANDGATE_DEFAULT_PROFILE", default_value_t = Profile::Baseline))]
    pub default_profile: Profile,

    /// Enforcement for pods without a `landgate.dev/enforcement` annotation.
    #[cfg_attr(feature = "clap", arg(long, env = "LANDGATE_DEFAULT_ENFORCEMENT", default_value = "best-effort",
          value_parser = parse_enforcement))]
    pub default_enforcement: Enforcement,

    /// Namespaces never mutated, even when labelled (comma-separated).
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            env = "LANDGATE_EXCLUDED_NAMESPACES",
            value_delimiter = ',',
            default_value = "kube-system"
        )
    )]
    pub excluded_namespaces: Vec<String>,

    /// What to do with a pod that has a container without `command` whose
    /// image could not be resolved (resolution off, timeout, not found,
    /// refused credentials, unreachable registry): its entrypoint is
    /// unknown, so it cannot be wrapped. `admit-unwrapped` admits the whole
    /// pod unwrapped with a warning (a pod is never half-wrapped); `reject`
    /// refuses it, naming the image and the cause. Pods whose enforcement is
    /// `required` are always refused.
    #[cfg_attr(feature = "clap", arg(long, env = "LANDGATE_UNKNOWN_ENTRYPOINT", default_value_t = UnknownEntrypoint::AdmitUnwrapped))]
    pub unknown_entrypoint: UnknownEntrypoint,

    /// Program names that get a wrapper symlink in `/landgate/bin`
    /// (comma-separated).
    #[cfg_attr(feature = "clap", arg(long, env = "LANDGATE_WRAPPERS", value_delimiter = ',',
        value_parser = parse_wrapper,
          default_values_t = DEFAULT_WRAPPERS.iter().map(|s| s.to_string())))]
    pub wrappers: Vec<String>,

    /// PATH assumed for images whose own PATH is unknown (containers without
    /// an explicit PATH env); the launcher dir is put in front of it.
    #[cfg_attr(feature = "clap", arg(
        long,
        env = "LANDGATE_DEFAULT_PATH",
        default_value = DEFAULT_PATH
    ))]
    pub default_path: String,

    /// Rewrite each resolved image to `name:tag@sha256:…`, so that the
    /// config landgate looked up is the one that runs (a tag moved after
    /// admission cannot run another entrypoint under this policy). Images
    /// already pinned to a digest are never rewritten.
    #[cfg_attr(feature = "clap", arg(long, env = "LANDGATE_PIN_DIGESTS", default_value_t = true,
        action = clap::ArgAction::Set, value_name = "BOOL"))]
    pub pin_digests: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            launcher_image: DEFAULT_LAUNCHER_IMAGE.to_owned(),
            default_profile: Profile::Baseline,
            default_enforcement: Enforcement::BestEffort,
            excluded_namespaces: vec!["kube-system".to_owned()],
            unknown_entrypoint: UnknownEntrypoint::AdmitUnwrapped,
            wrappers: DEFAULT_WRAPPERS.iter().map(|s| s.to_string()).collect(),
            default_path: DEFAULT_PATH.to_owned(),
            pin_digests: true,
        }
    }
}

/// A bad wrapper name would make every `landgate-init` fail at pod start:
/// refuse it when the webhook starts instead.
#[cfg(feature = "clap")]
fn parse_wrapper(name: &str) -> Result<String, String> {
    landgate_policy::wrappers::validate_name(name).map_err(|e| e.to_string())?;
    Ok(name.to_owned())
}

#[cfg(feature = "clap")]
fn parse_enforcement(s: &str) -> Result<Enforcement, String> {
    s.parse()
        .map_err(|e: landgate_policy::PolicyError| e.to_string())
}

/// How much a container is confined (the contract, `crates/policy/README.md`, "Profiles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Profile {
    /// Read/exec everywhere, write only where the pod declares it may.
    Baseline,
    /// Read only system dirs and declared paths, write only volumes and /tmp.
    Strict,
    /// No filesystem rules; only TCP bind (and connect) rules.
    PortsOnly,
}

impl Profile {
    pub const VALUES: &'static [&'static str] = &["baseline", "strict", "ports-only"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Strict => "strict",
            Self::PortsOnly => "ports-only",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "baseline" => Ok(Self::Baseline),
            "strict" => Ok(Self::Strict),
            "ports-only" => Ok(Self::PortsOnly),
            other => Err(format!(
                "unknown profile {other:?}: expected one of {}",
                Self::VALUES.join(", ")
            )),
        }
    }
}

/// What to do with a container whose entrypoint is unknown at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum UnknownEntrypoint {
    /// Refuse the pod, naming the container.
    Reject,
    /// Admit the whole pod unwrapped, with a warning.
    AdmitUnwrapped,
}

impl fmt::Display for UnknownEntrypoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Reject => "reject",
            Self::AdmitUnwrapped => "admit-unwrapped",
        })
    }
}
