//! Finding the real command on PATH (never the launcher itself) and
//! replacing the launcher with it.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use landgate_policy::env::{ACTIVE as ACTIVE_ENV, DEFAULT_PATH};

use crate::error::LaunchError;

/// The launcher's own file, by device and inode, so that PATH entries that
/// are the launcher (the wrapper symlinks, or the launcher's own directory)
/// are skipped whatever they are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfFile {
    dev: u64,
    ino: u64,
}

impl SelfFile {
    /// Reads `/proc/self/exe`.
    pub fn current() -> Result<Self, LaunchError> {
        std::fs::metadata("/proc/self/exe")
            .map(|m| Self::of(&m))
            .map_err(LaunchError::SelfUnknown)
    }

    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    fn is(&self, meta: &std::fs::Metadata) -> bool {
        *self == Self::of(meta)
    }
}

/// A command resolved to the file to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub program: PathBuf,
    /// A copy of the launcher was found (and skipped) before `program`.
    pub skipped_self: bool,
}

/// Resolves `name` like `execvp` does, except that candidates that are the
/// launcher itself are skipped. A name with a slash is used as given.
pub fn resolve(
    name: &OsStr,
    path_var: Option<&OsStr>,
    me: SelfFile,
) -> Result<Resolved, LaunchError> {
    resolve_lazily(name, path_var, || Ok(me))
}

/// [`resolve`], asking for the launcher's own file only when a PATH search
/// finds a candidate: a name with a slash (the usual container command)
/// then costs no `stat` of `/proc/self/exe`.
pub fn resolve_lazily(
    name: &OsStr,
    path_var: Option<&OsStr>,
    mut me: impl FnMut() -> Result<SelfFile, LaunchError>,
) -> Result<Resolved, LaunchError> {
    if name.is_empty() {
        return Err(LaunchError::Usage("the command name is empty".to_owned()));
    }
    if name.as_bytes().contains(&b'/') {
        return Ok(Resolved {
            program: PathBuf::from(name),
            skipped_self: false,
        });
    }
    let mut known: Option<SelfFile> = None;
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut skipped_self = false;
    for dir in std::env::split_paths(path_var) {
        // POSIX: an empty PATH entry means the current directory.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(name);
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue;
        }
        let this = match known {
            Some(file) => file,
            None => *known.insert(me()?),
        };
        if this.is(&meta) {
            skipped_self = true;
            continue;
        }
        return Ok(Resolved {
            program: candidate,
            skipped_self,
        });
    }
    Err(LaunchError::CommandNotFound {
        name: name.to_owned(),
        path: path_var.to_owned(),
        skipped: skipped_self,
    })
}

/// Replaces the launcher with `program` (same PID; the command's signals and
/// exit code are its own). Returns only on failure.
///
/// A bare `execve`: std's `Command` would copy the whole environment into a
/// sorted map to add one variable, most of the launcher's own work. What the
/// Rust runtime changed at startup is reset first, as `Command` does: SIGPIPE
/// back to its default, and an empty signal mask, the state a freshly
/// started container process has.
pub fn exec(
    program: &Path,
    argv0: &OsStr,
    args: &[OsString],
    mark_active: bool,
    sandboxed: bool,
) -> LaunchError {
    LaunchError::Exec {
        program: program.to_owned(),
        source: execve(program, argv0, args, mark_active),
        sandboxed,
    }
}

#[allow(unsafe_code)]
fn execve(program: &Path, argv0: &OsStr, args: &[OsString], mark_active: bool) -> io::Error {
    unsafe extern "C" {
        /// The process environment, NULL-terminated (POSIX).
        static environ: *const *const libc::c_char;
    }
    let c = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "nul byte found in provided data",
            )
        })
    };
    let strings = (|| {
        let path = c(program.as_os_str())?;
        let argv = std::iter::once(argv0)
            .chain(args.iter().map(OsString::as_os_str))
            .map(c)
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, io::Error>((path, argv))
    })();
    let (path, argv) = match strings {
        Ok(strings) => strings,
        Err(err) => return err,
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let active = format!("{ACTIVE_ENV}=1\0");
    let mut envp: Vec<*const libc::c_char> = Vec::new();
    // SAFETY: `environ` is the C library's, valid and NULL-terminated; the
    // launcher is single-threaded and never changes its environment, so the
    // strings it points at stay valid until execve copies them.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let bytes = std::ffi::CStr::from_ptr(*entry).to_bytes();
            // Every earlier value is dropped, so the command sees exactly one.
            let earlier = mark_active
                && bytes.len() > ACTIVE_ENV.len()
                && bytes.starts_with(ACTIVE_ENV.as_bytes())
                && bytes[ACTIVE_ENV.len()] == b'=';
            if !earlier {
                envp.push(*entry);
            }
            entry = entry.add(1);
        }
    }
    if mark_active {
        envp.push(active.as_ptr().cast());
    }
    envp.push(std::ptr::null());
    // SAFETY: plain libc calls on a local, initialised signal set; they only
    // change this thread's signal state, which execve hands on.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut());
    }
    // SAFETY: every pointer is to a NUL-terminated string that outlives the
    // call (`path`, `argv`, `active`, or the environment), and both arrays
    // end with NULL. execve returns only on failure.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn executable(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn me_at(path: &Path) -> SelfFile {
        SelfFile::of(&std::fs::metadata(path).unwrap())
    }

    #[test]
    fn skips_the_launcher_and_its_wrapper_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let (wrappers, real) = (root.path().join("wrappers"), root.path().join("real"));
        std::fs::create_dir_all(&wrappers).unwrap();
        std::fs::create_dir_all(&real).unwrap();
        let launcher = root.path().join("landgate");
        executable(&launcher);
        symlink("../landgate", wrappers.join("sh")).unwrap();
        executable(&real.join("sh"));
        let path = std::env::join_paths([&wrappers, &real]).unwrap();
        let found = resolve(OsStr::new("sh"), Some(&path), me_at(&launcher)).unwrap();
        assert_eq!(found.program, real.join("sh"));
        assert!(found.skipped_self);
    }

    #[test]
    fn skips_non_executables_and_directories() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(a.join("tool")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("tool"), "").unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        let me = me_at(root.path());
        let err = resolve(OsStr::new("tool"), Some(&path), me).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_NOT_FOUND);
        executable(&b.join("tool"));
        assert_eq!(
            resolve(OsStr::new("tool"), Some(&path), me)
                .unwrap()
                .program,
            b.join("tool")
        );
    }

    #[test]
    fn only_the_wrapper_on_path_is_not_found_with_a_hint() {
        let root = tempfile::tempdir().unwrap();
        let launcher = root.path().join("landgate");
        executable(&launcher);
        symlink("landgate", root.path().join("ruby")).unwrap();
        let err = resolve(
            OsStr::new("ruby"),
            Some(root.path().as_os_str()),
            me_at(&launcher),
        )
        .unwrap_err();
        assert!(err.to_string().contains("wrapper"), "{err}");
    }

    #[test]
    fn names_with_a_slash_are_used_as_given() {
        let me = me_at(Path::new("/"));
        let found = resolve(OsStr::new("./x"), Some(OsStr::new("")), me).unwrap();
        assert_eq!(found.program, PathBuf::from("./x"));
        assert!(resolve(OsStr::new(""), None, me).is_err());
    }

    #[test]
    fn the_launchers_own_file_is_asked_for_only_by_a_path_search_and_once() {
        let found = resolve_lazily(OsStr::new("/bin/sh"), None, || {
            panic!("a name with a slash needs no PATH search")
        })
        .unwrap();
        assert_eq!(found.program, PathBuf::from("/bin/sh"));
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        executable(&a.join("tool"));
        executable(&b.join("tool"));
        let path = std::env::join_paths([&a, &b]).unwrap();
        let me_is_a = |asked: &mut u32| {
            *asked += 1;
            Ok(me_at(&a.join("tool")))
        };
        let mut asked_here = 0;
        let found =
            resolve_lazily(OsStr::new("tool"), Some(&path), || me_is_a(&mut asked_here)).unwrap();
        assert_eq!(found.program, b.join("tool"));
        assert!(found.skipped_self);
        assert_eq!(asked_here, 1);
    }

    #[test]
    fn default_path_finds_sh() {
        let me = me_at(Path::new("/"));
        assert!(resolve(OsStr::new("sh"), None, me).is_ok());
    }
}
