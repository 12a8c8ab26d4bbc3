//! `landgate install DIR`: what the `landgate-init` init container runs to
//! put the launcher into the pod's `landgate` volume.
//!
//! Result: `DIR/landgate` (a copy of the running binary, mode 0555) and
//! `DIR/bin/<name>` -> `../landgate` for every wrapper name. The symlinks are
//! relative so the volume works wherever it is mounted. Re-running gives the
//! same result (files are replaced atomically through a rename).

use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use landgate_policy::layout::LAUNCHER_NAME;

use crate::error::LaunchError;

/// What an install produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub launcher: PathBuf,
    pub wrappers: Vec<PathBuf>,
}

/// Installs the running binary and the wrapper symlinks into `dir`.
pub fn install(dir: &Path, wrappers: &[String]) -> Result<Installed, LaunchError> {
    let fail = |path: &Path, hint: &'static str| {
        let path = path.to_owned();
        move |source: io::Error| LaunchError::Install { path, source, hint }
    };
    const WRITABLE: &str = "DIR must be a writable directory, e.g. the pod's landgate emptyDir";
    std::fs::create_dir_all(dir).map_err(fail(dir, WRITABLE))?;

    let launcher = dir.join(LAUNCHER_NAME);
    // The name repeats across restarts (landgate-init is usually PID 1 in
    // its container and the volume outlives it), so a temp left by a killed
    // run may be there, read-only (0555): copying onto it would fail for a
    // non-root user. Remove it first.
    let tmp = dir.join(format!(".{LAUNCHER_NAME}.{}.tmp", std::process::id()));
    let copy = || -> io::Result<()> {
        match std::fs::remove_file(&tmp) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        std::fs::copy("/proc/self/exe", &tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o555))?;
        std::fs::rename(&tmp, &launcher)
    };
    if let Err(err) = copy() {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(&launcher, WRITABLE)(err));
    }

    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(fail(&bin, WRITABLE))?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
        .map_err(fail(&bin, WRITABLE))?;
    let target = Path::new("..").join(LAUNCHER_NAME);
    let mut installed = Vec::with_capacity(wrappers.len());
    for name in wrappers {
        let link = bin.join(name);
        if std::fs::read_link(&link).is_ok_and(|t| t == target) {
            installed.push(link);
            continue;
        }
        let tmp = bin.join(format!(".{name}.{}.tmp", std::process::id()));
        let make = || -> io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            symlink(&target, &tmp)?;
            std::fs::rename(&tmp, &link)
        };
        make().map_err(fail(
            &link,
            "DIR/bin must be writable and the name must not be an existing directory",
        ))?;
        installed.push(link);
    }
    Ok(Installed {
        launcher,
        wrappers: installed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_idempotently_and_replaces_stale_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("landgate");
        let names = vec!["sh".to_owned(), "bash".to_owned()];
        let first = install(&root, &names).unwrap();
        let mode = std::fs::metadata(&first.launcher)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o555);
        std::fs::remove_file(root.join("bin/bash")).unwrap();
        symlink("/elsewhere", root.join("bin/bash")).unwrap();
        let second = install(&root, &names).unwrap();
        assert_eq!(first, second);
        for link in &second.wrappers {
            assert_eq!(std::fs::read_link(link).unwrap(), Path::new("../landgate"));
        }
        let leftovers: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_stale_read_only_temp_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("landgate");
        std::fs::create_dir_all(&root).unwrap();
        let stale = root.join(format!(".landgate.{}.tmp", std::process::id()));
        std::fs::write(&stale, "stale").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o555)).unwrap();
        let installed = install(&root, &[]).unwrap();
        assert!(!stale.exists());
        assert!(std::fs::metadata(&installed.launcher).unwrap().len() > 5);
    }

    #[test]
    fn unwritable_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = install(&file.join("sub"), &[]).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_INSTALL);
        assert!(err.to_string().contains("writable directory"), "{err}");
    }
}
