//! A `volumeMounts[].mountPath` as the container will see it.
//!
//! The kubelet makes a relative mountPath absolute by joining it to `/` and
//! cleaning it (`volumeutil.MakeAbsolutePath`); an absolute one goes to the
//! runtime as written, and runc resolves it inside the container's root
//! filesystem, `..` included. Every check and every policy rule compares the
//! normalised path, never the raw string: `landgate/bin`, `//landgate` and
//! `/./landgate/` all reach the launcher directory.
//!
//! `..` is refused rather than cleaned: runc resolves it after following
//! the image's symlinks (`/x/..` is the parent of wherever `/x` points), so a
//! lexical clean can name a different directory from the one mounted, and
//! no rule derived from it could be trusted.

use std::path::{Component, Path, PathBuf};

use landgate_launcher::policy::AbsPath;

/// Why a mountPath cannot be used in a wrapped pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountPathError {
    #[error("is empty")]
    Empty,
    #[error(
        "{0:?} contains `..`, which the runtime resolves through the image's symlinks; write the absolute path without `..`"
    )]
    ParentDir(String),
    #[error("{0:?} is not valid UTF-8")]
    NotUtf8(String),
}

/// Normalises `raw` the way the kubelet and runc will place the mount.
pub fn normalise(raw: &str) -> Result<AbsPath, MountPathError> {
    if raw.is_empty() {
        return Err(MountPathError::Empty);
    }
    let path = Path::new(raw);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(MountPathError::ParentDir(raw.to_owned()));
    }
    // Components() drops `.` (past the first), repeated and trailing
    // slashes; rooting first turns a relative path into the kubelet's.
    let rooted: PathBuf = std::iter::once(Component::RootDir)
        .chain(
            path.components()
                .filter(|c| matches!(c, Component::Normal(_))),
        )
        .collect();
    let text = rooted
        .to_str()
        .ok_or_else(|| MountPathError::NotUtf8(raw.to_owned()))?;
    // Rooted and free of `.` and `..`: the parse cannot fail.
    text.parse()
        .map_err(|_| MountPathError::NotUtf8(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("/data", "/data")]
    #[case("data", "/data")]
    #[case("landgate/bin", "/landgate/bin")]
    #[case("//landgate", "/landgate")]
    #[case("/./landgate/bin/", "/landgate/bin")]
    #[case("./srv//cache/.", "/srv/cache")]
    #[case("/", "/")]
    #[case(".", "/")]
    fn normalises_like_the_kubelet(#[case] raw: &str, #[case] want: &str) {
        assert_eq!(normalise(raw).unwrap().to_string(), want);
    }

    #[rstest::rstest]
    #[case("/x/../landgate")]
    #[case("..")]
    #[case("a/../../landgate")]
    fn refuses_parent_components(#[case] raw: &str) {
        assert_eq!(
            normalise(raw),
            Err(MountPathError::ParentDir(raw.to_owned()))
        );
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(normalise(""), Err(MountPathError::Empty));
    }
}
