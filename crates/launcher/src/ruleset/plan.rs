//! A policy resolved against this kernel and this filesystem: every policy
//! path opened, the rights and ports to handle, the seccomp filters to
//! install. Nothing is applied here, so `check` shows exactly what `exec`
//! applies.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use landgate_policy::{AbsPath, Enforcement, Policy, PortSet};
use landlock::{Access, AccessFs, BitFlags, Scope};

use super::assess::{Assessment, Capability};
use crate::error::LaunchError;
use crate::kernel::LandlockSupport;
use crate::seccomp::Filters;

/// A policy path, opened.
#[derive(Debug)]
pub struct PathRule {
    /// `fs.rx` or `fs.rw`.
    pub field: &'static str,
    pub path: AbsPath,
    pub access: BitFlags<AccessFs>,
    pub is_dir: bool,
    /// An `O_PATH` descriptor of `path`.
    pub(super) fd: OwnedFd,
}

/// The filesystem half of a plan.
#[derive(Debug)]
pub struct FsPlan {
    /// Every filesystem right the kernel's ABI handles: denied unless a rule
    /// allows it.
    pub handled: BitFlags<AccessFs>,
    pub rules: Vec<PathRule>,
    /// Policy paths that do not exist (skipped with a warning).
    pub skipped: Vec<(&'static str, AbsPath)>,
}

/// A policy resolved against this kernel and this filesystem: everything
/// needed to restrict, nothing applied yet.
#[derive(Debug)]
pub struct Plan {
    pub support: LandlockSupport,
    pub assessment: Assessment,
    pub enforcement: Enforcement,
    pub fs: Option<FsPlan>,
    pub bind: Option<PortSet>,
    pub connect: Option<PortSet>,
    pub scopes: BitFlags<Scope>,
    /// The seccomp filters to install (MPTCP when TCP is restricted, TCP
    /// Fast Open when connect is, io_uring when TCP is and the policy does
    /// not allow it).
    pub seccomp: Filters,
    /// TCP is restricted and `allow_io_uring` is set (io_uring left alone).
    pub io_uring_allowed: bool,
    pub log_denials: bool,
}

impl Plan {
    /// Opens every policy path. A missing path is skipped (listed in
    /// `fs.skipped`); a path that exists but cannot be opened is an error.
    pub fn new(policy: &Policy, support: LandlockSupport) -> Result<Self, LaunchError> {
        let abi = support.crate_abi();
        let fs = match &policy.fs {
            None => None,
            Some(rules) => {
                let mut plan = FsPlan {
                    handled: AccessFs::from_all(abi),
                    rules: Vec::new(),
                    skipped: Vec::new(),
                };
                let all = AccessFs::from_all(abi);
                let read = rx_access(abi);
                let paths = rules
                    .rx
                    .iter()
                    .map(|p| ("fs.rx", p, read))
                    .chain(rules.rw.iter().map(|p| ("fs.rw", p, all)));
                for (field, path, access) in paths {
                    match open_path(field, path, access, abi)? {
                        Some(rule) => plan.rules.push(rule),
                        None => plan.skipped.push((field, path.clone())),
                    }
                }
                Some(plan)
            }
        };
        let mut scopes = BitFlags::empty();
        if policy.scope.signal {
            scopes |= Scope::Signal;
        }
        if policy.scope.abstract_unix_socket {
            scopes |= Scope::AbstractUnixSocket;
        }
        Ok(Self {
            support,
            assessment: Assessment::new(policy, support),
            enforcement: policy.enforcement,
            fs,
            bind: policy.net.effective_bind(),
            connect: policy.net.effective_connect(),
            scopes,
            seccomp: Filters {
                mptcp: policy.restricts_tcp(),
                fastopen: policy.net.connect.is_some(),
                io_uring: policy.refuses_io_uring(),
            },
            io_uring_allowed: policy.io_uring_bypasses_tcp(),
            log_denials: policy.log_denials,
        })
    }
}

/// What of the plan this kernel handles. `render` and `apply` both ask here,
/// so `check` lists what `exec` applies.
impl Plan {
    pub(super) fn supports(&self, capability: Capability) -> bool {
        capability.supported_at(self.support.abi())
    }

    pub(super) fn tcp_supported(&self) -> bool {
        self.supports(Capability::Tcp)
    }

    pub(super) fn scopes_supported(&self) -> bool {
        self.supports(Capability::Scopes)
    }

    pub(super) fn handles_anything(&self) -> bool {
        self.fs.as_ref().is_some_and(|fs| !fs.handled.is_empty())
            || (self.tcp_supported() && (self.bind.is_some() || self.connect.is_some()))
            || (self.scopes_supported() && !self.scopes.is_empty())
    }
}

/// The rights an `fs.rx` rule grants: read and execute, plus connecting to
/// named UNIX sockets whenever the ABI handles that right (ABI 9). Without
/// it, every `fs.rx` path would deny `connect()` to sockets beneath it while
/// allowing to read them, e.g. a daemon's socket under a read-only /run.
pub fn rx_access(abi: landlock::ABI) -> BitFlags<AccessFs> {
    AccessFs::from_read(abi) | (AccessFs::from_all(abi) & AccessFs::ResolveUnix)
}

fn open_path(
    field: &'static str,
    path: &AbsPath,
    access: BitFlags<AccessFs>,
    abi: landlock::ABI,
) -> Result<Option<PathRule>, LaunchError> {
    let unopenable = |source: io::Error| LaunchError::PathUnopenable {
        field,
        path: path.to_string(),
        source,
    };
    let (fd, is_dir) = match open_o_path(path) {
        Ok(opened) => opened,
        // ENOTDIR: a parent is not a directory, so the path does not exist
        // either.
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(None);
        }
        Err(err) => return Err(unopenable(err)),
    };
    let access = if is_dir {
        access
    } else {
        access & AccessFs::from_file(abi)
    };
    Ok(Some(PathRule {
        field,
        path: path.clone(),
        access,
        is_dir,
        fd,
    }))
}

/// `path` opened `O_PATH | O_CLOEXEC` (what Landlock rules name), and
/// whether it is a directory. Bare syscalls: std and `landlock::PathFd`
/// take five per path (musl sets `FD_CLOEXEC` again, the descriptor is
/// duplicated to be stat'ed, then closed). Policy paths are nearly all
/// directories, so the first open asks for one (`O_DIRECTORY`): when it
/// succeeds, the kernel has said what the descriptor is and no `fstat` is
/// needed. Anything else (ENOTDIR: a file, or a parent that is not a
/// directory) is opened again without it and `fstat`ed, on that descriptor:
/// the same file the rule will name.
fn open_o_path(path: &AbsPath) -> io::Result<(OwnedFd, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let path: &std::path::Path = path.as_ref();
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte in path"))?;
    match open_at(&c_path, libc::O_DIRECTORY) {
        Ok(fd) => return Ok((fd, true)),
        Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => {}
        Err(err) => return Err(err),
    }
    let fd = open_at(&c_path, 0)?;
    let dir = is_dir(&fd)?;
    Ok((fd, dir))
}

#[allow(unsafe_code)]
fn open_at(c_path: &std::ffi::CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `c_path` is NUL-terminated and outlives the call; openat
    // returns a new descriptor or -1.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC | flags,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor the kernel just returned, owned by no
    // one else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

#[allow(unsafe_code)]
fn is_dir(fd: &OwnedFd) -> io::Result<bool> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is open; fstat fills `stat` on success.
    if unsafe { libc::fstat(std::os::fd::AsRawFd::as_raw_fd(fd), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so `stat` is initialised.
    let mode = unsafe { stat.assume_init() }.st_mode;
    Ok(mode & libc::S_IFMT == libc::S_IFDIR)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASELINE, avail};
    use super::*;

    #[test]
    fn io_uring_is_refused_whenever_tcp_is_restricted_unless_allowed() {
        let plan = |json: &str| Plan::new(&Policy::from_json(json).unwrap(), avail(7)).unwrap();
        for json in [
            r#"{"v":1,"net":{"bind":[8080]}}"#,
            r#"{"v":1,"net":{"connect":[]}}"#,
        ] {
            let refused = plan(json);
            assert!(refused.seccomp.io_uring, "{json}");
            assert!(!refused.io_uring_allowed, "{json}");
            assert!(
                refused.render().contains(
                    "io_uring: io_uring_setup, io_uring_enter and io_uring_register fail with ENOSYS (seccomp)"
                ),
                "{json}"
            );
        }
        let allowed = plan(r#"{"v":1,"net":{"bind":[8080]},"allow_io_uring":true}"#);
        assert!(!allowed.seccomp.io_uring);
        assert!(allowed.seccomp.mptcp);
        assert!(allowed.io_uring_allowed);
        let text = allowed.render();
        assert!(
            text.contains(
                "io_uring: allowed by allow_io_uring: TCP bind/connect rules can be bypassed"
            ),
            "{text}"
        );
        assert!(
            text.contains("status: PartiallyEnforced (abi 7: allow_io_uring is set"),
            "{text}"
        );
        for json in [
            r#"{"v":1,"fs":{"rx":["/"]}}"#,
            r#"{"v":1,"allow_io_uring":true}"#,
        ] {
            let open = plan(json);
            assert!(!open.seccomp.any(), "{json}");
            assert!(!open.io_uring_allowed, "{json}");
            assert!(
                open.render()
                    .contains("io_uring: allowed (TCP is unrestricted)"),
                "{json}"
            );
        }
    }

    #[test]
    fn plan_opens_paths_and_skips_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let json = format!(
            r#"{{"v":1,"fs":{{"rx":["/"],"rw":["{}","{}","/nonexistent/landgate"]}},"net":{{"bind":[8080,8080]}}}}"#,
            dir.path().display(),
            file.display()
        );
        let plan = Plan::new(&Policy::from_json(&json).unwrap(), avail(7)).unwrap();
        let fs = plan.fs.as_ref().unwrap();
        assert_eq!(fs.rules.len(), 3);
        assert!(fs.rules[1].is_dir);
        assert!(!fs.rules[2].is_dir);
        assert!(!fs.rules[2].access.contains(AccessFs::ReadDir));
        assert!(fs.rules[2].access.contains(AccessFs::WriteFile));
        assert_eq!(fs.skipped.len(), 1);
        assert_eq!(plan.bind, Some(PortSet::from([0, 8080])));
        assert!(plan.seccomp.mptcp);
        assert!(!plan.seccomp.fastopen);
        assert!(plan.seccomp.io_uring);
        let warnings = plan.warnings();
        assert_eq!(
            warnings,
            ["fs.rw path /nonexistent/landgate does not exist; its rule is skipped"]
        );
        let text = plan.render();
        assert!(
            text.contains("tcp bind: only 0 (ephemeral), 8080"),
            "{text}"
        );
        assert!(text.contains("tcp connect: unrestricted"), "{text}");
        assert!(text.contains("status: FullyEnforced (abi 7)"), "{text}");
    }

    #[test]
    fn directories_files_links_and_paths_beneath_a_file_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let file_link = dir.path().join("file-link");
        std::os::unix::fs::symlink(&file, &file_link).unwrap();
        let abs = |p: &std::path::Path| p.to_str().unwrap().parse::<AbsPath>().unwrap();
        let (dir_fd, dir_is_dir) = open_o_path(&abs(dir.path())).unwrap();
        assert!(dir_is_dir);
        for (path, want) in [(&link, true), (&file, false), (&file_link, false)] {
            let (fd, is) = open_o_path(&abs(path)).unwrap();
            assert_eq!(is, want, "{}", path.display());
            assert_eq!(is_dir(&fd).unwrap(), want, "{}", path.display());
        }
        assert!(is_dir(&dir_fd).unwrap());
        let beneath_file = open_o_path(&abs(&file.join("child"))).unwrap_err();
        assert_eq!(beneath_file.raw_os_error(), Some(libc::ENOTDIR));
    }

    #[test]
    fn unopenable_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let json = format!(r#"{{"v":1,"fs":{{"rx":["{}"]}}}}"#, a.display());
        let err = Plan::new(&Policy::from_json(&json).unwrap(), avail(7)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("cannot open fs.rx path {}", a.display())),
            "{message}"
        );
        assert_eq!(err.exit_code(), crate::error::EXIT_SANDBOX);
    }

    #[test]
    fn rx_rules_allow_named_unix_sockets_whenever_the_abi_handles_them() {
        // No ABI 9 kernel here: check the computed access sets for a
        // simulated one. Every handled right that no rule grants is denied,
        // so rx rules must carry resolve_unix once it is handled, or
        // connecting to a named UNIX socket outside fs.rw would fail.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let json = format!(
            r#"{{"v":1,"fs":{{"rx":["/","{}"],"rw":["{}"]}}}}"#,
            file.display(),
            dir.path().display()
        );
        let policy = Policy::from_json(&json).unwrap();
        for abi in [9, 10] {
            let plan = Plan::new(&policy, avail(abi)).unwrap();
            let fs = plan.fs.as_ref().unwrap();
            assert!(fs.handled.contains(AccessFs::ResolveUnix), "abi {abi}");
            for rule in &fs.rules {
                assert!(
                    rule.access.contains(AccessFs::ResolveUnix),
                    "abi {abi}: {} {} lacks resolve_unix",
                    rule.field,
                    rule.path
                );
                assert_eq!(rule.access & !fs.handled, BitFlags::empty());
            }
            let rx_dir = &fs.rules[0];
            assert_eq!(
                rx_dir.access,
                AccessFs::from_read(plan.support.crate_abi()) | AccessFs::ResolveUnix
            );
            assert!(!rx_dir.access.contains(AccessFs::WriteFile));
            assert!(!rx_dir.access.contains(AccessFs::MakeSock));
            assert!(
                plan.render()
                    .contains("fs.rx  /: execute,read_file,read_dir,resolve_unix")
            );
        }
        // Below ABI 9 the right is neither handled nor granted (the kernel
        // would reject a rule naming it).
        let plan = Plan::new(&policy, avail(7)).unwrap();
        let fs = plan.fs.as_ref().unwrap();
        assert!(!fs.handled.contains(AccessFs::ResolveUnix));
        assert!(
            fs.rules
                .iter()
                .all(|r| !r.access.contains(AccessFs::ResolveUnix))
        );
        assert_eq!(fs.rules[0].access, AccessFs::from_read(landlock::ABI::V7));
    }

    #[test]
    fn old_abi_handles_only_what_it_knows() {
        let plan = Plan::new(&Policy::from_json(BASELINE).unwrap(), avail(3)).unwrap();
        let fs = plan.fs.as_ref().unwrap();
        assert!(fs.handled.contains(AccessFs::Truncate));
        assert!(!fs.handled.contains(AccessFs::IoctlDev));
        assert!(!plan.tcp_supported());
        assert!(!plan.scopes_supported());
        assert!(plan.handles_anything());
        let ports_only = Policy::from_json(r#"{"v":1,"net":{"bind":[80]}}"#).unwrap();
        assert!(!Plan::new(&ports_only, avail(3)).unwrap().handles_anything());
    }
}
