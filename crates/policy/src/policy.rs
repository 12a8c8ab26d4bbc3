//! The policy: the one wire contract between the webhook (which writes it into
//! `LANDGATE_POLICY`) and the launcher (which enforces it).
//!
//! ```json
//! {"v":1,"enforcement":"best-effort",
//!  "fs":{"rx":["/"],"rw":["/tmp","/data"]},
//!  "net":{"bind":[8080],"connect":null},
//!  "scope":{"signal":true,"abstract_unix_socket":true}}
//! ```
//!
//! Parsing is strict (unknown fields, a wrong version, ports outside
//! 0..=65535 and relative paths are refused, each naming the field) because a
//! typo in a security policy must never silently widen what a process may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{AbsPath, Port, PortSet};
/// The environment variable the webhook sets and the launcher reads.
pub const POLICY_ENV: &str = crate::env::POLICY;

/// The only wire version this build reads and writes.
pub const POLICY_VERSION: u32 = 1;

/// A whole policy for one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Wire version; always [`POLICY_VERSION`].
    #[serde(deserialize_with = "deserialize_version")]
    pub v: u32,
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Filesystem rules; `None` leaves the filesystem unrestricted (the
    /// `ports-only` profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsRules>,
    #[serde(default)]
    pub net: NetRules,
    #[serde(default, skip_serializing_if = "Scopes::is_none")]
    pub scope: Scopes,
    /// Silence the launcher's success line on stderr (warnings and errors are
    /// always printed).
    #[serde(default, skip_serializing_if = "is_false")]
    pub quiet: bool,
    /// Ask the kernel to audit-log this sandbox's denials, including those of
    /// the command after `execve` (Landlock ABI >= 7; ignored before). Set
    /// false for workloads whose expected denials would flood the audit log.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub log_denials: bool,
    /// Let the command use io_uring although `net` restricts TCP. Without it,
    /// whenever bind or connect is restricted, the io_uring syscalls fail
    /// with ENOSYS (io_uring users fall back to plain syscalls), because
    /// io_uring operations bypass the seccomp filter: `IORING_OP_SOCKET`
    /// makes MPTCP sockets, which Landlock's TCP rules miss, and io_uring
    /// sends can use `MSG_FASTOPEN` past the connect rules. Setting it
    /// therefore gives up TCP enforcement, and the launcher reports
    /// PartiallyEnforced. No effect when TCP is unrestricted (io_uring is
    /// then never refused).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_io_uring: bool,
}

/// Paths beneath which access is allowed; everything else is denied for the
/// rights Landlock handles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsRules {
    /// Read and execute beneath these paths.
    #[serde(default)]
    pub rx: Vec<AbsPath>,
    /// Full access (read, write, create, remove, execute) beneath these paths.
    #[serde(default)]
    pub rw: Vec<AbsPath>,
}

/// TCP rules (Landlock ABI >= 4). UDP, SCTP and raw sockets are outside
/// Landlock's network rules and are never restricted by them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetRules {
    /// TCP ports the process may bind; `None` = unrestricted.
    #[serde(default)]
    pub bind: Option<PortSet>,
    /// TCP ports the process may connect to; `None` = unrestricted.
    #[serde(default)]
    pub connect: Option<PortSet>,
    /// Also allow binding port 0 (kernel-chosen ephemeral port) when `bind`
    /// is restricted: clients that bind before connecting need it.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub bind_ephemeral: bool,
}

impl Default for NetRules {
    fn default() -> Self {
        Self {
            bind: None,
            connect: None,
            bind_ephemeral: true,
        }
    }
}

/// Landlock ABI 6 scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scopes {
    /// Deny signals to processes outside the domain.
    #[serde(default)]
    pub signal: bool,
    /// Deny connecting to abstract UNIX sockets created outside the domain.
    #[serde(default)]
    pub abstract_unix_socket: bool,
}

impl Scopes {
    pub const ALL: Self = Self {
        signal: true,
        abstract_unix_socket: true,
    };

    pub fn is_none(&self) -> bool {
        !self.signal && !self.abstract_unix_socket
    }
}

/// What the launcher does when the kernel cannot enforce everything asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    /// Apply what the kernel supports and report the status on stderr.
    #[default]
    BestEffort,
    /// Refuse to run the command unless every restriction is enforced.
    Required,
}

impl Enforcement {
    pub const VALUES: &'static [&'static str] = &["best-effort", "required"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BestEffort => "best-effort",
            Self::Required => "required",
        }
    }
}

impl fmt::Display for Enforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Enforcement {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "best-effort" => Ok(Self::BestEffort),
            "required" => Ok(Self::Required),
            other => Err(PolicyError::UnknownEnforcement(other.to_owned())),
        }
    }
}

/// Why a policy could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "invalid landgate policy at `{field}`: {message} (the policy is written by the landgate webhook; re-create the pod or fix {env})",
        env = POLICY_ENV
    )]
    Invalid { field: String, message: String },
    #[error("port {0} is out of range: TCP ports are integers from 0 to 65535")]
    PortOutOfRange(String),
    #[error("path {0:?} is relative: policy paths must be absolute (start with /)")]
    RelativePath(String),
    #[error("path {0:?} contains `..`: write the normalised absolute path")]
    UnnormalisedPath(String),
    #[error(
        "unsupported policy version {0}: this launcher reads version {POLICY_VERSION}; use a launcher image that matches the webhook"
    )]
    UnsupportedVersion(u32),
    #[error("unknown enforcement {0:?}: expected best-effort or required")]
    UnknownEnforcement(String),
}

impl Policy {
    /// Parses the compact JSON form, naming the offending field on error.
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(de).map_err(|err| {
            let field = match err.path().to_string() {
                // "." is the root; "?" is where a JSON syntax error stopped
                // the parser before it reached a field.
                p if p == "." || p == "?" => "(whole policy)".to_owned(),
                p => p,
            };
            PolicyError::Invalid {
                field,
                message: err.into_inner().to_string(),
            }
        })
    }

    /// The compact JSON form written into `LANDGATE_POLICY`.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings, integers and bools into a
        // String cannot fail; AbsPath only holds paths built from &str.
        serde_json::to_string(self).unwrap_or_else(|err| unreachable!("policy serializes: {err}"))
    }

    /// True when the policy asks for any TCP restriction (and therefore for
    /// the MPTCP filter, since Landlock's TCP rules miss MPTCP sockets).
    pub fn restricts_tcp(&self) -> bool {
        self.net.bind.is_some() || self.net.connect.is_some()
    }

    /// True when io_uring must be refused: TCP is restricted and the policy
    /// does not set `allow_io_uring`.
    pub fn refuses_io_uring(&self) -> bool {
        self.restricts_tcp() && !self.allow_io_uring
    }

    /// True when TCP is restricted but `allow_io_uring` leaves a way around
    /// it.
    pub fn io_uring_bypasses_tcp(&self) -> bool {
        self.restricts_tcp() && self.allow_io_uring
    }

    /// True when the policy asks for any restriction at all.
    pub fn restricts_anything(&self) -> bool {
        self.fs.is_some() || self.restricts_tcp() || !self.scope.is_none()
    }
}

impl NetRules {
    /// The TCP ports that may be bound, as enforced: with port 0
    /// (kernel-chosen ephemeral port) added when `bind_ephemeral` is set.
    /// `None` = unrestricted.
    pub fn effective_bind(&self) -> Option<PortSet> {
        self.bind.as_ref().map(|ports| match self.bind_ephemeral {
            true => ports.clone().with(Port(0)),
            false => ports.clone(),
        })
    }

    /// The TCP ports that may be connected to. `None` = unrestricted.
    pub fn effective_connect(&self) -> Option<PortSet> {
        self.connect.clone()
    }
}

fn deserialize_version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(deserializer)?;
    if v == POLICY_VERSION {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(PolicyError::UnsupportedVersion(v)))
    }
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> AbsPath {
        s.parse().unwrap()
    }

    #[test]
    fn design_example_round_trips() {
        let json = r#"{"v":1,"enforcement":"best-effort","fs":{"rx":["/"],"rw":["/tmp","/data"]},"net":{"bind":[8080],"connect":null},"scope":{"signal":true,"abstract_unix_socket":true}}"#;
        let policy = Policy::from_json(json).unwrap();
        assert_eq!(
            policy,
            Policy {
                v: 1,
                enforcement: Enforcement::BestEffort,
                fs: Some(FsRules {
                    rx: vec![path("/")],
                    rw: vec![path("/tmp"), path("/data")],
                }),
                net: NetRules {
                    bind: Some(PortSet::from([8080])),
                    connect: None,
                    bind_ephemeral: true,
                },
                scope: Scopes::ALL,
                quiet: false,
                log_denials: true,
                allow_io_uring: false,
            }
        );
        assert_eq!(policy.to_json(), json);
        assert_eq!(Policy::from_json(&policy.to_json()).unwrap(), policy);
    }

    #[test]
    fn log_denials_defaults_on_and_round_trips_off() {
        let on = Policy::from_json(r#"{"v":1}"#).unwrap();
        assert!(on.log_denials);
        assert!(!on.to_json().contains("log_denials"));
        let off = Policy::from_json(r#"{"v":1,"log_denials":false}"#).unwrap();
        assert!(!off.log_denials);
        assert_eq!(Policy::from_json(&off.to_json()).unwrap(), off);
        let (field, _) = rejection(r#"{"v":1,"log_denials":"no"}"#);
        assert_eq!(field, "log_denials");
    }

    #[test]
    fn allow_io_uring_defaults_off_is_skipped_at_default_and_round_trips_on() {
        let off = Policy::from_json(r#"{"v":1,"net":{"bind":[8080]}}"#).unwrap();
        assert!(!off.allow_io_uring);
        assert!(off.refuses_io_uring());
        assert!(!off.io_uring_bypasses_tcp());
        // Absent at its default: every policy written before the field
        // existed serialises byte-for-byte as it did.
        assert_eq!(
            off.to_json(),
            r#"{"v":1,"enforcement":"best-effort","net":{"bind":[8080],"connect":null}}"#
        );
        let on =
            Policy::from_json(r#"{"v":1,"net":{"bind":[8080]},"allow_io_uring":true}"#).unwrap();
        assert!(on.allow_io_uring);
        assert!(!on.refuses_io_uring());
        assert!(on.io_uring_bypasses_tcp());
        assert_eq!(
            on.to_json(),
            r#"{"v":1,"enforcement":"best-effort","net":{"bind":[8080],"connect":null},"allow_io_uring":true}"#
        );
        assert_eq!(Policy::from_json(&on.to_json()).unwrap(), on);
        // Without TCP rules there is nothing to refuse or bypass.
        let open = Policy::from_json(r#"{"v":1,"allow_io_uring":true}"#).unwrap();
        assert!(!open.refuses_io_uring());
        assert!(!open.io_uring_bypasses_tcp());
        assert!(!Policy::from_json(r#"{"v":1}"#).unwrap().refuses_io_uring());
        // Strict like every other field: a wrong type or a misplaced or
        // misspelt name is refused, naming it.
        let (field, _) = rejection(r#"{"v":1,"allow_io_uring":"yes"}"#);
        assert_eq!(field, "allow_io_uring");
        let (field, message) = rejection(r#"{"v":1,"net":{"allow_io_uring":true}}"#);
        assert_eq!(field, "net.allow_io_uring");
        assert!(message.contains("unknown field"), "{message}");
        let (field, _) = rejection(r#"{"v":1,"io_uring":true}"#);
        assert_eq!(field, "io_uring");
    }

    #[test]
    fn effective_ports_add_ephemeral_bind_and_dedupe() {
        let policy =
            Policy::from_json(r#"{"v":1,"net":{"bind":[8080,80,8080],"connect":[443,53,443]}}"#)
                .unwrap();
        assert_eq!(
            policy.net.effective_bind(),
            Some(PortSet::from([0, 80, 8080]))
        );
        assert_eq!(
            policy.net.effective_connect(),
            Some(PortSet::from([53, 443]))
        );
        let no_ephemeral =
            Policy::from_json(r#"{"v":1,"net":{"bind":[80],"bind_ephemeral":false}}"#).unwrap();
        assert_eq!(no_ephemeral.net.effective_bind(), Some(PortSet::from([80])));
        let open = Policy::from_json(r#"{"v":1}"#).unwrap();
        assert_eq!(open.net.effective_bind(), None);
        assert_eq!(open.net.effective_connect(), None);
        assert!(!open.restricts_anything());
        assert!(policy.restricts_anything());
    }

    #[test]
    fn minimal_policy_restricts_nothing() {
        let policy = Policy::from_json(r#"{"v":1}"#).unwrap();
        assert_eq!(policy.fs, None);
        assert_eq!(policy.net, NetRules::default());
        assert!(policy.scope.is_none());
        assert!(!policy.restricts_tcp());
        assert_eq!(
            policy.to_json(),
            r#"{"v":1,"enforcement":"best-effort","net":{"bind":null,"connect":null}}"#
        );
    }

    #[test]
    fn optional_fields_round_trip() {
        let policy = Policy {
            v: 1,
            enforcement: Enforcement::Required,
            fs: None,
            net: NetRules {
                bind: Some(PortSet::from([])),
                connect: Some(PortSet::from([53, 443])),
                bind_ephemeral: false,
            },
            scope: Scopes {
                signal: true,
                abstract_unix_socket: false,
            },
            quiet: true,
            log_denials: false,
            allow_io_uring: true,
        };
        let json = policy.to_json();
        assert_eq!(
            json,
            r#"{"v":1,"enforcement":"required","net":{"bind":[],"connect":[53,443],"bind_ephemeral":false},"scope":{"signal":true,"abstract_unix_socket":false},"quiet":true,"log_denials":false,"allow_io_uring":true}"#
        );
        assert_eq!(Policy::from_json(&json).unwrap(), policy);
    }

    fn rejection(json: &str) -> (String, String) {
        match Policy::from_json(json).unwrap_err() {
            PolicyError::Invalid { field, message } => (field, message),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn rejects_unknown_field_naming_it() {
        let (field, message) = rejection(r#"{"v":1,"net":{"bnid":[80]}}"#);
        assert_eq!(field, "net.bnid");
        assert!(message.contains("unknown field `bnid`"), "{message}");
    }

    #[test]
    fn rejects_wrong_version() {
        let (field, message) = rejection(r#"{"v":2}"#);
        assert_eq!(field, "v");
        assert!(
            message.contains("unsupported policy version 2"),
            "{message}"
        );
        let (field, _) = rejection(r#"{"fs":{"rx":["/"]}}"#);
        assert_eq!(field, "(whole policy)");
    }

    #[test]
    fn rejects_ports_out_of_range_naming_the_index() {
        let (field, message) = rejection(r#"{"v":1,"net":{"bind":[80,70000]}}"#);
        assert_eq!(field, "net.bind[1]");
        assert!(message.contains("port 70000 is out of range"), "{message}");
        let (field, message) = rejection(r#"{"v":1,"net":{"connect":[-1]}}"#);
        assert_eq!(field, "net.connect[0]");
        assert!(message.contains("port -1"), "{message}");
        let (field, _) = rejection(r#"{"v":1,"net":{"connect":[1.5]}}"#);
        assert_eq!(field, "net.connect[0]");
    }

    #[test]
    fn rejects_relative_and_unnormalised_paths() {
        let (field, message) = rejection(r#"{"v":1,"fs":{"rw":["/tmp","data"]}}"#);
        assert_eq!(field, "fs.rw[1]");
        assert!(message.contains("\"data\" is relative"), "{message}");
        let (field, message) = rejection(r#"{"v":1,"fs":{"rx":["/usr/../etc"]}}"#);
        assert_eq!(field, "fs.rx[0]");
        assert!(message.contains("`..`"), "{message}");
    }

    #[test]
    fn rejects_unknown_enforcement() {
        let (field, message) = rejection(r#"{"v":1,"enforcement":"strict"}"#);
        assert_eq!(field, "enforcement");
        assert!(message.contains("unknown variant `strict`"), "{message}");
    }

    #[test]
    fn rejects_malformed_json() {
        let err = Policy::from_json("{not json").unwrap_err();
        assert!(err.to_string().contains("LANDGATE_POLICY"), "{err}");
        assert!(err.to_string().contains("at `(whole policy)`"), "{err}");
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(path("/var//cache/").to_string(), "/var/cache");
        assert!(path("/var/cache/nginx").is_within(&path("/var/cache")));
        assert!(!path("/var/cachet").is_within(&path("/var/cache")));
    }

    #[test]
    fn ports_parse_from_annotation_text() {
        assert_eq!(" 443".parse::<Port>().unwrap(), Port(443));
        assert_eq!(
            "http".parse::<Port>().unwrap_err(),
            PolicyError::PortOutOfRange("http".into())
        );
        assert!("65536".parse::<Port>().is_err());
    }
}
