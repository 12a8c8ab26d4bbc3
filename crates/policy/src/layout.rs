//! Where landgate puts things in a wrapped pod: one memory-backed volume,
//! mounted read-write in `landgate-init` and read-only in every wrapped
//! container at [`DIR`].
//!
//! ```text
//! /landgate/landgate        the launcher (a copy of the image's binary)
//! /landgate/bin/<wrapper>   -> ../landgate, first on every wrapped PATH
//! ```

use std::sync::LazyLock;

use crate::AbsPath;

/// The launcher volume's mount path.
pub const DIR: &str = "/landgate";
/// The launcher inside wrapped containers.
pub const LAUNCHER: &str = "/landgate/landgate";
/// The wrapper symlinks; first on every wrapped container's PATH.
pub const WRAPPER_DIR: &str = "/landgate/bin";
/// The launcher's file name in [`DIR`]; also the `argv[0]` basename that means
/// "the launcher itself, not a wrapper".
pub const LAUNCHER_NAME: &str = "landgate";
/// The launcher binary inside the launcher image. Not under [`DIR`]: the
/// volume is mounted there in `landgate-init` and would hide it.
pub const IMAGE_LAUNCHER: &str = "/usr/local/bin/landgate";
/// The name of the launcher volume in the pod.
pub const VOLUME: &str = "landgate";
/// The injected init container that fills the volume.
pub const INIT_CONTAINER: &str = "landgate-init";

/// [`DIR`] as a path, parsed once.
pub fn dir_path() -> &'static AbsPath {
    static PATH: LazyLock<AbsPath> = LazyLock::new(|| {
        DIR.parse()
            .unwrap_or_else(|err| unreachable!("constant path {DIR}: {err}"))
    });
    &PATH
}

/// True when `path` is [`DIR`] or lies beneath it (whole components:
/// `/landgatex` is not).
pub fn in_dir(path: &AbsPath) -> bool {
    path.is_within(dir_path())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// `in_dir` of `path` as parsed (normalised) into an `AbsPath`, checked
    /// against the component reading it replaced (`Path::starts_with`).
    fn in_dir_of_parsed(path: &str) -> bool {
        let parsed: AbsPath = path.parse().unwrap();
        let answer = in_dir(&parsed);
        assert_eq!(
            answer,
            Path::new(parsed.as_str()).starts_with(DIR),
            "{path}"
        );
        answer
    }

    #[test]
    fn the_layout_is_one_directory() {
        for path in [DIR, LAUNCHER, WRAPPER_DIR, "/landgate/", "//landgate/./bin"] {
            assert!(in_dir_of_parsed(path), "{path}");
        }
        assert_eq!(Path::new(LAUNCHER).file_name().unwrap(), LAUNCHER_NAME);
        for path in ["/landgatex", "/landgat", "/", "/x/landgate", IMAGE_LAUNCHER] {
            assert!(!in_dir_of_parsed(path), "{path}");
        }
    }
}
