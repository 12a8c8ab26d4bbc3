//! Restricting the process to a [`Plan`]: the seccomp filter, then the
//! Landlock ruleset, on the calling thread. The plan has decided what to
//! restrict; this carries it out and records any shortfall on the
//! assessment.
//!
//! The ruleset is made with the bare syscalls. The plan asks only for what
//! this kernel's ABI handles, so the `landlock` crate's compatibility layer
//! had nothing left to decide, and it cost a syscall per rule (an `fstat`
//! to tell files from directories, which the plan already did), two ABI
//! probes and a second `no_new_privs`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use landgate_policy::Enforcement;
use landlock::{AccessNet, BitFlags};

use super::assess::{Assessment, Capability};
use super::plan::Plan;
use super::report::{Gap, Status};
use crate::error::LaunchError;
use crate::seccomp;

/// `struct landlock_ruleset_attr` (ABI 6: with `scoped`). Older kernels
/// accept the longer struct as long as the fields they do not know are 0.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the UAPI).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct landlock_net_port_attr`.
#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

// linux/landlock.h
const RULE_PATH_BENEATH: libc::c_long = 1;
const RULE_NET_PORT: libc::c_long = 2;
const RESTRICT_SELF_LOG_SAME_EXEC_OFF: u32 = 1 << 0;
const RESTRICT_SELF_LOG_NEW_EXEC_ON: u32 = 1 << 1;

fn failed(call: &'static str) -> LaunchError {
    LaunchError::Landlock {
        call,
        source: io::Error::last_os_error(),
    }
}

impl Plan {
    /// Installs the seccomp filter and restricts the calling thread. After
    /// `Ok`, the process is sandboxed for good and only `execve` remains.
    pub fn apply(mut self) -> Result<Assessment, LaunchError> {
        if self.seccomp.any()
            && let Err(err) = seccomp::install(self.seccomp)
        {
            match self.enforcement {
                Enforcement::Required => return Err(LaunchError::Seccomp(err)),
                Enforcement::BestEffort => self.assessment.degrade(Gap::Seccomp(err)),
            }
        }
        if self.support.abi() == 0 || !self.handles_anything() {
            return Ok(self.assessment);
        }
        let assessment = self.assessment.clone();
        self.restrict()?;
        Ok(assessment)
    }

    #[allow(unsafe_code)]
    fn restrict(self) -> Result<(), LaunchError> {
        let tcp = self.tcp_supported();
        let mut handled_net = BitFlags::<AccessNet>::empty();
        if tcp && self.bind.is_some() {
            handled_net |= AccessNet::BindTcp;
        }
        if tcp && self.connect.is_some() {
            handled_net |= AccessNet::ConnectTcp;
        }
        // Only rights this ABI supports are asked for, so the kernel
        // accepts all of them or refuses (EINVAL): never a silent downgrade.
        let attr = RulesetAttr {
            handled_access_fs: self.fs.as_ref().map_or(0, |fs| fs.handled.bits()),
            handled_access_net: handled_net.bits(),
            scoped: if self.scopes_supported() {
                self.scopes.bits()
            } else {
                0
            },
        };
        // SAFETY: `attr` is a live `landlock_ruleset_attr` of the size given;
        // the kernel only reads it and returns a new descriptor or -1.
        let raw = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &raw const attr,
                size_of::<RulesetAttr>(),
                0,
            )
        };
        if raw < 0 {
            return Err(failed("landlock_create_ruleset"));
        }
        // SAFETY: a descriptor the kernel just returned, owned by no one else.
        let ruleset = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        let add = |kind: libc::c_long, rule: *const libc::c_void| {
            // SAFETY: `rule` points at a live attribute struct of `kind`;
            // the kernel only reads it.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset.as_raw_fd(),
                    kind,
                    rule,
                    0,
                )
            };
            if ret == 0 {
                Ok(())
            } else {
                Err(failed("landlock_add_rule"))
            }
        };
        if let Some(fs) = &self.fs {
            for rule in &fs.rules {
                let attr = PathBeneathAttr {
                    allowed_access: rule.access.bits(),
                    parent_fd: rule.fd.as_raw_fd(),
                };
                add(RULE_PATH_BENEATH, (&raw const attr).cast())?;
            }
        }
        if tcp {
            for (ports, access) in [
                (&self.bind, AccessNet::BindTcp),
                (&self.connect, AccessNet::ConnectTcp),
            ] {
                for port in ports.iter().flatten() {
                    let attr = NetPortAttr {
                        allowed_access: BitFlags::from(access).bits(),
                        port: u64::from(port.get()),
                    };
                    add(RULE_NET_PORT, (&raw const attr).cast())?;
                }
            }
        }
        let mut flags = 0;
        if self.supports(Capability::DenialLogging) {
            // By default the kernel logs denials only until the next execve,
            // i.e. the launcher's own; the command's are what operators need.
            flags = if self.log_denials {
                RESTRICT_SELF_LOG_NEW_EXEC_ON
            } else {
                RESTRICT_SELF_LOG_SAME_EXEC_OFF
            };
        }
        // Landlock requires no_new_privs (the seccomp filter set it already
        // when there is one; setting it twice is harmless).
        // SAFETY: prctl with integer arguments reads no memory.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(failed("prctl(PR_SET_NO_NEW_PRIVS)"));
        }
        // SAFETY: plain integer arguments; restricts this thread only.
        let ret =
            unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), flags) };
        if ret != 0 {
            let err = failed("landlock_restrict_self");
            if let LaunchError::Landlock { source, .. } = &err
                && source.raw_os_error() == Some(libc::E2BIG)
            {
                return Err(LaunchError::TooManyLayers);
            }
            return Err(err);
        }
        // Restricted: only execve remains, and every descriptor here is
        // O_CLOEXEC, so execve closes them. Closing them now would be one
        // syscall each (fourteen for a baseline pod) on every exec.
        let _ = ruleset.into_raw_fd();
        for rule in self.fs.into_iter().flat_map(|fs| fs.rules) {
            let _ = rule.fd.into_raw_fd();
        }
        Ok(())
    }
}

impl Assessment {
    /// Records a gap found while applying (the seccomp filters failed, or
    /// the `landlock` crate reported less than was asked).
    fn degrade(&mut self, gap: Gap) {
        if self.status == Status::FullyEnforced {
            self.status = Status::PartiallyEnforced;
        }
        self.gaps.push(gap);
    }
}

#[cfg(test)]
mod tests {
    use landlock::{AccessFs, Scope};

    use super::*;

    #[test]
    fn the_crates_flags_are_the_kernels_bits() {
        // The ruleset passes the `landlock` crate's flag bits to the kernel
        // as they are: they must be the UAPI values (linux/landlock.h).
        assert_eq!(BitFlags::from(AccessFs::Execute).bits(), 1 << 0);
        assert_eq!(BitFlags::from(AccessFs::ReadDir).bits(), 1 << 3);
        assert_eq!(BitFlags::from(AccessFs::Refer).bits(), 1 << 13);
        assert_eq!(BitFlags::from(AccessFs::Truncate).bits(), 1 << 14);
        assert_eq!(BitFlags::from(AccessFs::IoctlDev).bits(), 1 << 15);
        assert_eq!(BitFlags::from(AccessNet::BindTcp).bits(), 1 << 0);
        assert_eq!(BitFlags::from(AccessNet::ConnectTcp).bits(), 1 << 1);
        assert_eq!(BitFlags::from(Scope::AbstractUnixSocket).bits(), 1 << 0);
        assert_eq!(BitFlags::from(Scope::Signal).bits(), 1 << 1);
        assert_eq!(size_of::<PathBeneathAttr>(), 12);
        assert_eq!(size_of::<RulesetAttr>(), 24);
    }
}
