//! Where landgate puts things in a wrapped pod: one memory-backed volume,
//! mounted read-write in `landgate-init` and read-only in every wrapped
//! container at [`DIR`].
//!
//! ```text
//! /landgate/landgate        the launcher (a copy of the image's binary)
//! /landgate/bin/<wrapper>   -> ../landgate, first on every wrapped PATH
//! ```

use std::path::Path;

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

/// True when `path` is [`DIR`] or lies beneath it (whole components:
/// `/landgatex` is not).
pub fn in_dir(path: impl AsRef<Path>) -> bool {
    path.as_ref().starts_with(DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_one_directory() {
        for path in [LAUNCHER, WRAPPER_DIR] {
            assert!(in_dir(path), "{path}");
        }
        assert_eq!(Path::new(LAUNCHER).file_name().unwrap(), LAUNCHER_NAME);
        assert!(!in_dir("/landgatex"));
        assert!(!in_dir(IMAGE_LAUNCHER));
    }
}
