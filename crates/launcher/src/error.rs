//! What can stop the launcher before it becomes the command, and the exit
//! code each failure gets.
//!
//! Once `execve` succeeds the launcher is gone and every exit code is the
//! command's own. Before that, the launcher exits with a code from the
//! 120..=127 range, following the `env(1)`/`timeout(1)` convention that 126
//! and 127 mean "found but not executable" and "not found", so that a failed
//! launch is never mistaken for the command's own result. 124 is left unused
//! because `timeout(1)` uses it.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

use landgate_policy::PolicyError;

/// `landgate install` could not write the launcher or its wrappers.
pub const EXIT_INSTALL: u8 = 120;
/// The policy is missing, unreadable or invalid.
pub const EXIT_POLICY: u8 = 121;
/// `enforcement: required` and the kernel cannot enforce everything asked.
pub const EXIT_NOT_ENFORCED: u8 = 122;
/// The sandbox could not be built or applied (unopenable policy path,
/// Landlock or seccomp syscall failure, launcher cannot identify itself).
pub const EXIT_SANDBOX: u8 = 123;
/// How many Landlock domains the kernel lets nest (`LANDLOCK_MAX_NUM_LAYERS`).
pub const LANDLOCK_MAX_LAYERS: u32 = 16;

/// Bad command line.
pub const EXIT_USAGE: u8 = 125;
/// The command was found but could not be executed.
pub const EXIT_CANNOT_EXEC: u8 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Why the launcher did not become the command. Every message says what to
/// do about it.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0} (run `landgate --help` for usage)")]
    Usage(String),

    #[error(
        "{env} is not set: refusing to run {what} without its sandbox (the landgate webhook sets {env} on every wrapped container; pass --policy-env or --policy-file to read the policy elsewhere)"
    )]
    PolicyMissing { env: String, what: String },

    /// Wrapper mode without a policy: most often a sandboxed program that
    /// started a child with a filtered environment (e.g. `env={"PATH": ...}`)
    /// and so dropped `LANDGATE_POLICY` and `LANDGATE_ACTIVE`.
    #[error(
        "{env} is not set: refusing to run {what} without its sandbox. Likely cause: a sandboxed program started `{argv0}` with a cleared or filtered environment (e.g. env={{\"PATH\": ...}}), so the landgate wrapper it reached lost the policy. Fix: pass {env} and LANDGATE_ACTIVE through to the child's environment, or call the program by its absolute path (e.g. /bin/sh, not sh) so that the wrapper is not used (the child still inherits the sandbox). If this is not inside a landgate-wrapped container, the landgate webhook did not wrap it: check the pod's admission"
    )]
    WrapperPolicyMissing {
        env: String,
        what: String,
        argv0: String,
    },

    #[error(
        "{env} is not valid UTF-8: the policy must be the JSON written by the landgate webhook"
    )]
    PolicyNotUnicode { env: String },

    #[error("cannot read the policy file {}: {source}", path.display())]
    PolicyFile { path: PathBuf, source: io::Error },

    #[error(transparent)]
    Policy(#[from] PolicyError),

    #[error(
        "refusing to run {what}: the policy says `enforcement: required` but this kernel only reaches {reached}; {fix}"
    )]
    EnforcementRequired {
        what: String,
        reached: String,
        fix: String,
    },

    #[error(
        "cannot open {field} path {path}: {source} (it exists but the launcher cannot open it; fix its permissions or remove it from the policy)"
    )]
    PathUnopenable {
        field: &'static str,
        path: String,
        source: io::Error,
    },

    #[error(
        "cannot apply the Landlock ruleset: {call} failed: {source} (the container runtime's seccomp profile must allow the landlock_* syscalls)"
    )]
    Landlock {
        call: &'static str,
        source: io::Error,
    },

    #[error(
        "cannot apply the Landlock ruleset: this process is already inside {max} nested Landlock sandboxes, the kernel's limit (landlock_restrict_self failed with E2BIG). Every `landgate exec`, and every wrapper run without LANDGATE_ACTIVE=1 in its environment, adds one: inside a landgate sandbox, run the command directly or keep LANDGATE_ACTIVE=1 in the environment so that wrappers do not add layers",
        max = LANDLOCK_MAX_LAYERS
    )]
    TooManyLayers,

    #[error(
        "cannot install the seccomp filter: {0} (without it Landlock's TCP rules can be bypassed with MPTCP sockets, TCP Fast Open and io_uring; allow seccomp(2) in the runtime's profile or set enforcement to best-effort)"
    )]
    Seccomp(String),

    #[error(
        "cannot identify the launcher's own file through /proc/self/exe: {0} (mount /proc; without it the launcher could find itself on PATH and loop)"
    )]
    SelfUnknown(io::Error),

    #[error("{}: command not found on PATH ({}){}", name.to_string_lossy(), path.to_string_lossy(), skipped_note(*skipped))]
    CommandNotFound {
        name: OsString,
        path: OsString,
        skipped: bool,
    },

    #[error("cannot execute {}: {source}{}", program.display(), exec_hint(source, *sandboxed))]
    Exec {
        program: PathBuf,
        source: io::Error,
        sandboxed: bool,
    },

    #[error("cannot install into {}: {source} ({hint})", path.display())]
    Install {
        path: PathBuf,
        source: io::Error,
        hint: &'static str,
    },
}

fn skipped_note(skipped: bool) -> &'static str {
    if skipped {
        "; the landgate wrapper of that name was skipped: install the real program in the image"
    } else {
        ""
    }
}

fn exec_hint(source: &io::Error, sandboxed: bool) -> &'static str {
    match source.kind() {
        io::ErrorKind::PermissionDenied if sandboxed => {
            " (the sandbox is already applied: the program must lie beneath an fs.rx or fs.rw path of the policy, and be executable)"
        }
        io::ErrorKind::PermissionDenied => " (check that it is executable)",
        io::ErrorKind::NotFound => " (check the path, and for scripts the #! interpreter)",
        _ => "",
    }
}

impl LaunchError {
    /// The launcher's exit code for this failure (see the module docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::PolicyMissing { .. }
            | Self::WrapperPolicyMissing { .. }
            | Self::PolicyNotUnicode { .. }
            | Self::PolicyFile { .. }
            | Self::Policy(_) => EXIT_POLICY,
            Self::EnforcementRequired { .. } => EXIT_NOT_ENFORCED,
            Self::PathUnopenable { .. }
            | Self::Landlock { .. }
            | Self::TooManyLayers
            | Self::Seccomp(_)
            | Self::SelfUnknown(_) => EXIT_SANDBOX,
            Self::CommandNotFound { .. } => EXIT_NOT_FOUND,
            Self::Exec { source, .. } if source.kind() == io::ErrorKind::NotFound => EXIT_NOT_FOUND,
            Self::Exec { .. } => EXIT_CANNOT_EXEC,
            Self::Install { .. } => EXIT_INSTALL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_in_the_launcher_range() {
        let codes = [
            EXIT_INSTALL,
            EXIT_POLICY,
            EXIT_NOT_ENFORCED,
            EXIT_SANDBOX,
            EXIT_USAGE,
            EXIT_CANNOT_EXEC,
            EXIT_NOT_FOUND,
        ];
        for (i, a) in codes.iter().enumerate() {
            assert!((120..=127).contains(a));
            assert!(codes[i + 1..].iter().all(|b| a != b), "{a} is used twice");
        }
    }

    #[test]
    fn exec_failures_map_like_env() {
        let not_found = LaunchError::Exec {
            program: "/x".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
            sandboxed: false,
        };
        assert_eq!(not_found.exit_code(), EXIT_NOT_FOUND);
        let denied = LaunchError::Exec {
            program: "/x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
            sandboxed: true,
        };
        assert_eq!(denied.exit_code(), EXIT_CANNOT_EXEC);
        assert!(denied.to_string().contains("fs.rx"), "{denied}");
    }
}
