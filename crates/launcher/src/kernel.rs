//! What the running kernel offers: its release and its Landlock ABI.

use std::fmt;
use std::io;

use landlock::ABI;

/// **Test-only.** Caps the Landlock ABI the launcher believes the kernel
/// offers (`0` = no Landlock), so that tests on a modern kernel can exercise
/// the partial and refused paths. Honoured only by debug builds (what
/// `cargo test` runs); release builds ignore it, because anything that lowers
/// enforcement must not be reachable from an image's environment.
pub const TEST_MAX_ABI_ENV: &str = "LANDGATE_TEST_MAX_ABI";

/// The highest ABI the `landlock` crate knows; a newer kernel is used at this
/// level.
pub const CRATE_MAX_ABI: u32 = 10;

/// Whether and how far this kernel supports Landlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockSupport {
    /// Landlock works; `abi` is the ABI the launcher uses (the kernel's,
    /// capped at [`CRATE_MAX_ABI`]), `kernel_abi` what the kernel reported.
    Available { abi: u32, kernel_abi: u32 },
    /// Built into the kernel but not in the active LSM list (EOPNOTSUPP).
    NotEnabled,
    /// Not built into the kernel, or the syscall is blocked (ENOSYS/EPERM),
    /// e.g. by a container runtime's seccomp profile.
    NotImplemented,
}

impl LandlockSupport {
    /// Asks the kernel, then applies the test-only cap.
    pub fn detect() -> Self {
        let detected = Self::from_version_call(landlock_abi_version());
        match test_max_abi() {
            Some(cap) => detected.capped(cap),
            None => detected,
        }
    }

    fn from_version_call(result: Result<i64, io::Error>) -> Self {
        match result {
            Ok(v) if v > 0 => {
                let kernel_abi = u32::try_from(v).unwrap_or(u32::MAX);
                Self::Available {
                    abi: kernel_abi.min(CRATE_MAX_ABI),
                    kernel_abi,
                }
            }
            Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => Self::NotEnabled,
            _ => Self::NotImplemented,
        }
    }

    /// The same support, as if the kernel offered at most ABI `cap`.
    pub fn capped(self, cap: u32) -> Self {
        match self {
            Self::Available { .. } if cap == 0 => Self::NotImplemented,
            Self::Available { abi, kernel_abi } => Self::Available {
                abi: abi.min(cap),
                kernel_abi: kernel_abi.min(cap),
            },
            other => other,
        }
    }

    /// The ABI in use, 0 when Landlock is unavailable.
    pub fn abi(self) -> u32 {
        match self {
            Self::Available { abi, .. } => abi,
            Self::NotEnabled | Self::NotImplemented => 0,
        }
    }

    /// The crate's view of [`Self::abi`].
    pub fn crate_abi(self) -> ABI {
        ABI::from(i32::try_from(self.abi()).unwrap_or(i32::MAX))
    }

    /// Why Landlock is unavailable and what to do about it; `None` when it is
    /// available.
    pub fn unavailable_reason(self) -> Option<&'static str> {
        match self {
            Self::Available { .. } => None,
            Self::NotEnabled => Some(
                "Landlock is built into this kernel but not enabled: add landlock to the lsm= boot parameter",
            ),
            Self::NotImplemented => Some(
                "Landlock is not available: the kernel lacks CONFIG_SECURITY_LANDLOCK (needs Linux >= 5.13) or the container runtime's seccomp profile blocks the landlock_* syscalls",
            ),
        }
    }
}

impl fmt::Display for LandlockSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Available { abi, kernel_abi } if abi == kernel_abi => {
                write!(f, "available, ABI {abi}")
            }
            Self::Available { abi, kernel_abi } => write!(
                f,
                "available, kernel ABI {kernel_abi}, used as ABI {abi} (the newest this launcher knows)"
            ),
            Self::NotEnabled => f.write_str("not enabled"),
            Self::NotImplemented => f.write_str("not available"),
        }
    }
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`: the
/// kernel's Landlock ABI version. The `landlock` crate keeps its own probe
/// private, and `features`/`check` must report the ABI without building a
/// ruleset.
#[allow(unsafe_code)]
fn landlock_abi_version() -> Result<i64, io::Error> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;
    // SAFETY: with a NULL attribute pointer, size 0 and the VERSION flag the
    // kernel reads no memory and creates no file descriptor; it only returns
    // the ABI version (or -1 with errno).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0_usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn test_max_abi() -> Option<u32> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var(TEST_MAX_ABI_ENV).ok()?.trim().parse().ok()
}

/// The kernel release (`uname -r`), read from procfs.
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|err| format!("unknown ({err})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_call_results_map_to_support() {
        assert_eq!(
            LandlockSupport::from_version_call(Ok(7)),
            LandlockSupport::Available {
                abi: 7,
                kernel_abi: 7
            }
        );
        assert_eq!(
            LandlockSupport::from_version_call(Ok(42)).abi(),
            CRATE_MAX_ABI
        );
        assert_eq!(
            LandlockSupport::from_version_call(Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))),
            LandlockSupport::NotEnabled
        );
        assert_eq!(
            LandlockSupport::from_version_call(Err(io::Error::from_raw_os_error(libc::ENOSYS))),
            LandlockSupport::NotImplemented
        );
    }

    #[test]
    fn cap_lowers_and_zero_disables() {
        let seven = LandlockSupport::Available {
            abi: 7,
            kernel_abi: 7,
        };
        assert_eq!(seven.capped(3).abi(), 3);
        assert_eq!(seven.capped(9).abi(), 7);
        assert_eq!(seven.capped(0), LandlockSupport::NotImplemented);
        assert_eq!(seven.crate_abi(), ABI::V7);
        assert!(LandlockSupport::NotEnabled.unavailable_reason().is_some());
    }

    #[test]
    fn this_kernel_has_landlock() {
        // The project's CI kernel (6.18) offers ABI 7; asserting it here makes
        // a silently disabled LSM fail loudly instead of skipping enforcement.
        let support = LandlockSupport::from_version_call(landlock_abi_version());
        assert!(support.abi() >= 7, "{support}");
    }
}
