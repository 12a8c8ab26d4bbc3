//! The programs that get a wrapper symlink in [`crate::layout::WRAPPER_DIR`].

use crate::layout::LAUNCHER_NAME;

/// The shells, interpreters and download tools `kubectl exec` sessions and
/// scripts start by name: the launcher's `install` default and the
/// webhook's `--wrappers` default.
pub const DEFAULT: &[&str] = &[
    "sh", "bash", "ash", "dash", "zsh", "busybox", "python", "python3", "perl", "ruby", "node",
    "php", "tar", "curl", "wget", "nc",
];

/// A wrapper name that would make `landgate install` fail or misbehave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WrapperNameError {
    #[error("wrapper name {0:?} is not a plain file name (e.g. sh, python3)")]
    NotAFileName(String),
    #[error(
        "wrapper name {0:?} is the launcher's own name; pick the names of the programs to wrap"
    )]
    LauncherName(String),
}

/// Checks a wrapper name: a plain file name, and not the launcher's own
/// (which would turn the launcher into a wrapper of itself).
pub fn validate_name(name: &str) -> Result<(), WrapperNameError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(WrapperNameError::NotAFileName(name.to_owned()));
    }
    if name == LAUNCHER_NAME {
        return Err(WrapperNameError::LauncherName(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("sh", true)]
    #[case("python3", true)]
    #[case("", false)]
    #[case("..", false)]
    #[case("bin/sh", false)]
    #[case("landgate", false)]
    #[case("a\0b", false)]
    fn wrapper_names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(validate_name(name).is_ok(), ok, "{name}");
    }

    #[test]
    fn defaults_are_valid() {
        for name in DEFAULT {
            validate_name(name).unwrap();
        }
    }
}
