//! Which directories on a container's PATH sandboxed code could write.

use landgate_policy::{AbsPath, FsRules, layout};

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
        let writable = !layout::in_dir(&dir)
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
