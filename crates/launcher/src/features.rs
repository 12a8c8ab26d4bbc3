//! `landgate features`: what this kernel can enforce (the counterpart of
//! `fence --linux-features`).
//!
//! The ABI that introduced each right is computed from the `landlock` crate's
//! own `from_all(ABI)` tables, so this report and the enforcement status
//! (`ruleset`) cannot disagree about which kernel supports what.

use std::fmt::Write as _;

use landlock::{ABI, Access, AccessFs, AccessNet, BitFlags, Scope};
use serde::Serialize;

use crate::kernel::{self, CRATE_MAX_ABI, LandlockSupport};

/// Filesystem rights, in the kernel's order, with the names the kernel docs
/// use (`LANDLOCK_ACCESS_FS_*` in lower case).
pub const FS_RIGHTS: &[(&str, AccessFs)] = &[
    ("execute", AccessFs::Execute),
    ("write_file", AccessFs::WriteFile),
    ("read_file", AccessFs::ReadFile),
    ("read_dir", AccessFs::ReadDir),
    ("remove_dir", AccessFs::RemoveDir),
    ("remove_file", AccessFs::RemoveFile),
    ("make_char", AccessFs::MakeChar),
    ("make_dir", AccessFs::MakeDir),
    ("make_reg", AccessFs::MakeReg),
    ("make_sock", AccessFs::MakeSock),
    ("make_fifo", AccessFs::MakeFifo),
    ("make_block", AccessFs::MakeBlock),
    ("make_sym", AccessFs::MakeSym),
    ("refer", AccessFs::Refer),
    ("truncate", AccessFs::Truncate),
    ("ioctl_dev", AccessFs::IoctlDev),
    ("resolve_unix", AccessFs::ResolveUnix),
];

/// Network rights. landgate policy v1 uses the TCP ones only.
pub const NET_RIGHTS: &[(&str, AccessNet)] = &[
    ("bind_tcp", AccessNet::BindTcp),
    ("connect_tcp", AccessNet::ConnectTcp),
    ("bind_udp", AccessNet::BindUdp),
    ("connect_send_udp", AccessNet::ConnectSendUdp),
];

/// Scopes.
pub const SCOPES: &[(&str, Scope)] = &[
    ("abstract_unix_socket", Scope::AbstractUnixSocket),
    ("signal", Scope::Signal),
];

/// The ABI that introduced the `log_*` restrict_self flags (denial logging
/// the launcher configures).
pub const LOG_FLAGS_SINCE: u32 = 7;

/// `landlock_restrict_self` flags, with the ABI that introduced them (the
/// crate does not expose a table for these).
pub const RESTRICT_SELF_FLAGS: &[(&str, u32)] = &[
    ("log_same_exec_off", LOG_FLAGS_SINCE),
    ("log_new_exec_on", LOG_FLAGS_SINCE),
    ("log_subdomains_off", LOG_FLAGS_SINCE),
    ("tsync_all_threads", 8),
];

/// The first ABI whose `from_all` contains `right`.
fn since<T: Access>(right: T) -> u32 {
    (1..=CRATE_MAX_ABI)
        .find(|&abi| {
            let all: BitFlags<T> = T::from_all(ABI::from(abi as i32));
            all.contains(right)
        })
        .unwrap_or(u32::MAX)
}

/// The ABI that introduced a filesystem right.
pub fn fs_since(right: AccessFs) -> u32 {
    since(right)
}

/// The ABI that introduced a network right.
pub fn net_since(right: AccessNet) -> u32 {
    since(right)
}

/// The ABI that introduced a scope.
pub fn scope_since(scope: Scope) -> u32 {
    since(scope)
}

/// The first Linux release of each Landlock ABI, for messages that tell the
/// operator which kernel to run.
pub fn linux_release_for(abi: u32) -> &'static str {
    match abi {
        0 | 1 => "5.13",
        2 => "5.19",
        3 => "6.2",
        4 => "6.7",
        5 => "6.10",
        6 => "6.12",
        7 => "6.15",
        8 => "7.0",
        9 => "7.1",
        _ => "7.2",
    }
}

/// One right and whether this kernel enforces it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub since_abi: u32,
    pub supported: bool,
}

/// The whole report, as printed by `landgate features --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Features {
    pub kernel: String,
    pub landlock: LandlockReport,
    pub fs: Vec<Feature>,
    pub net: Vec<Feature>,
    pub scope: Vec<Feature>,
    pub restrict_self: Vec<Feature>,
    /// Whether seccomp filters can be installed (the MPTCP, TCP Fast Open and
    /// io_uring filters need it).
    pub seccomp_filter: bool,
    /// What Landlock never covers on any ABI landgate uses; printed so that
    /// nobody assumes it is restricted.
    pub not_covered: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LandlockReport {
    /// `available`, `not-enabled` or `not-implemented`.
    pub status: &'static str,
    /// The ABI the launcher uses (0 when unavailable).
    pub abi: u32,
    /// The ABI the kernel reported, when newer than the launcher knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_abi: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl Features {
    /// Probes the running kernel.
    pub fn detect() -> Self {
        Self::for_support(
            kernel::release(),
            LandlockSupport::detect(),
            seccomp_available(),
        )
    }

    /// The report for a given kernel (pure; used by tests).
    pub fn for_support(kernel: String, support: LandlockSupport, seccomp_filter: bool) -> Self {
        let abi = support.abi();
        let row = |name, since_abi| Feature {
            name,
            since_abi,
            supported: abi >= since_abi,
        };
        let (status, kernel_abi) = match support {
            LandlockSupport::Available { abi, kernel_abi } => {
                ("available", (kernel_abi != abi).then_some(kernel_abi))
            }
            LandlockSupport::NotEnabled => ("not-enabled", None),
            LandlockSupport::NotImplemented => ("not-implemented", None),
        };
        Self {
            kernel,
            landlock: LandlockReport {
                status,
                abi,
                kernel_abi,
                reason: support.unavailable_reason(),
            },
            fs: FS_RIGHTS.iter().map(|&(n, r)| row(n, since(r))).collect(),
            net: NET_RIGHTS.iter().map(|&(n, r)| row(n, since(r))).collect(),
            scope: SCOPES.iter().map(|&(n, s)| row(n, since(s))).collect(),
            restrict_self: RESTRICT_SELF_FLAGS
                .iter()
                .map(|&(n, since_abi)| row(n, since_abi))
                .collect(),
            seccomp_filter,
            not_covered: NOT_COVERED.to_vec(),
        }
    }

    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|err| unreachable!("features serialize: {err}"))
    }

    /// The human-readable table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let l = &self.landlock;
        let _ = writeln!(out, "kernel: {}", self.kernel);
        let _ = match (l.status, l.kernel_abi, l.reason) {
            ("available", None, _) => writeln!(out, "landlock: available, ABI {}", l.abi),
            ("available", Some(k), _) => writeln!(
                out,
                "landlock: available, kernel ABI {k}, used as ABI {} (the newest this launcher knows)",
                l.abi
            ),
            (_, _, reason) => writeln!(
                out,
                "landlock: {} ({})",
                l.status,
                reason.unwrap_or("unknown")
            ),
        };
        for (title, rows) in [
            ("filesystem rights", &self.fs),
            ("network rights", &self.net),
            ("scopes", &self.scope),
            ("restrict_self flags", &self.restrict_self),
        ] {
            let _ = writeln!(out, "{title}:");
            for f in rows {
                let _ = writeln!(
                    out,
                    "  {:<22} abi {:<2}  {}",
                    f.name,
                    f.since_abi,
                    if f.supported { "yes" } else { "no" }
                );
            }
        }
        let _ = writeln!(
            out,
            "seccomp filter (closes the MPTCP, TCP Fast Open and io_uring holes in TCP rules): {}",
            if self.seccomp_filter { "yes" } else { "no" }
        );
        let _ = writeln!(
            out,
            "not restricted by landgate: {}",
            self.not_covered.join("; ")
        );
        out
    }
}

const NOT_COVERED: &[&str] = &[
    "UDP (landgate policy v1 has TCP rules only)",
    "SCTP and raw sockets",
    "listen() on a kernel-chosen ephemeral port (a socket listening without bind() gets one even when bind is restricted; bind(0) too unless bind_ephemeral is false)",
    "io_uring when the policy sets allow_io_uring (otherwise refused with ENOSYS whenever TCP is restricted): IORING_OP_SOCKET creates MPTCP sockets that bind and connect past the TCP rules, and io_uring sends can use MSG_FASTOPEN past connect rules",
    "an SQPOLL io_uring ring inherited from the launcher's parent (its kernel thread submits without syscalls)",
    "32-bit (i386) programs are killed by the seccomp filter when TCP is restricted",
];

/// Whether this kernel can run seccomp filters: the actions list exists
/// exactly when CONFIG_SECCOMP_FILTER is on.
fn seccomp_available() -> bool {
    std::path::Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_matches_the_kernel_documentation() {
        assert_eq!(fs_since(AccessFs::Execute), 1);
        assert_eq!(fs_since(AccessFs::Refer), 2);
        assert_eq!(fs_since(AccessFs::Truncate), 3);
        assert_eq!(fs_since(AccessFs::IoctlDev), 5);
        assert_eq!(net_since(AccessNet::BindTcp), 4);
        assert_eq!(net_since(AccessNet::ConnectTcp), 4);
        assert_eq!(scope_since(Scope::Signal), 6);
        assert_eq!(scope_since(Scope::AbstractUnixSocket), 6);
    }

    #[test]
    fn tables_cover_every_right_the_crate_knows() {
        let all_abi = ABI::from(CRATE_MAX_ABI as i32);
        let fs: BitFlags<AccessFs> = FS_RIGHTS.iter().map(|&(_, r)| r).collect();
        assert_eq!(fs, AccessFs::from_all(all_abi));
        let net: BitFlags<AccessNet> = NET_RIGHTS.iter().map(|&(_, r)| r).collect();
        assert_eq!(net, AccessNet::from_all(all_abi));
        let scopes: BitFlags<Scope> = SCOPES.iter().map(|&(_, s)| s).collect();
        assert_eq!(scopes, Scope::from_all(all_abi));
    }

    #[test]
    fn report_marks_rights_by_abi() {
        let f = Features::for_support(
            "6.1".into(),
            LandlockSupport::Available {
                abi: 3,
                kernel_abi: 3,
            },
            true,
        );
        let truncate = f.fs.iter().find(|r| r.name == "truncate").unwrap();
        assert!(truncate.supported);
        assert!(!f.net.iter().any(|r| r.supported));
        let text = f.render();
        assert!(text.contains("landlock: available, ABI 3"), "{text}");
        assert!(
            text.contains("closes the MPTCP, TCP Fast Open and io_uring holes"),
            "{text}"
        );
        assert!(
            text.contains("io_uring when the policy sets allow_io_uring"),
            "{text}"
        );
        assert!(
            text.contains("listen() on a kernel-chosen ephemeral port"),
            "{text}"
        );
        assert!(text.contains("bind_tcp"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&f.to_json()).unwrap();
        assert_eq!(json["landlock"]["abi"], 3);
        assert_eq!(json["net"][0]["supported"], false);
        let not_covered = json["not_covered"].to_string();
        assert!(not_covered.contains("MSG_FASTOPEN"), "{not_covered}");
        assert!(not_covered.contains("listen()"), "{not_covered}");
    }

    #[test]
    fn report_explains_missing_landlock() {
        let f = Features::for_support("5.10".into(), LandlockSupport::NotEnabled, true);
        assert!(f.render().contains("lsm="), "{}", f.render());
        assert_eq!(f.landlock.abi, 0);
    }
}
