//! What the running kernel can enforce of a policy: the [`Capability`] table
//! of minimum ABIs and the [`Assessment`] built from it, before anything is
//! opened or applied.

use landgate_policy::Policy;
use landlock::{AccessFs, AccessNet, Scope};

use super::report::{Gap, Status};
use crate::features::{LOG_FLAGS_SINCE, fs_since, net_since, scope_since};
use crate::kernel::LandlockSupport;

/// What landgate gates on the kernel's Landlock ABI. [`Capability::since`]
/// is the one table of minimum ABIs and [`Capability::supported_at`] the one
/// comparison: the assessment, the ruleset and `check`'s output all ask here,
/// so they cannot disagree about what a kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Rules on file truncation.
    Truncate,
    /// Rules on device ioctls.
    IoctlDev,
    /// TCP bind and connect rules.
    Tcp,
    /// Signal and abstract UNIX socket scopes.
    Scopes,
    /// Configuring denial logging (the `log_*` restrict_self flags).
    DenialLogging,
}

impl Capability {
    /// The ABI that introduced it, from the `landlock` crate's own tables
    /// (via `features`) where the crate has one.
    pub fn since(self) -> u32 {
        match self {
            Self::Truncate => fs_since(AccessFs::Truncate),
            Self::IoctlDev => fs_since(AccessFs::IoctlDev),
            // Bind and connect arrived together (ABI 4), as did both scopes
            // (ABI 6); `features` tests pin that.
            Self::Tcp => net_since(AccessNet::BindTcp),
            Self::Scopes => scope_since(Scope::Signal),
            Self::DenialLogging => LOG_FLAGS_SINCE,
        }
    }

    /// Whether a kernel offering ABI `abi` (0: no Landlock) has it.
    pub fn supported_at(self, abi: u32) -> bool {
        abi >= self.since()
    }
}

/// What the running kernel can enforce of a policy. Pure: a function of the
/// policy and the kernel's Landlock support.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub abi: u32,
    pub status: Status,
    pub gaps: Vec<Gap>,
    /// The policy asks for nothing (status is trivially FullyEnforced).
    pub restricts_nothing: bool,
}

/// How much of one part of a policy (filesystem, TCP, scopes) the kernel
/// enforces; the parts together give the [`Status`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Full,
    Partial,
    None,
}

impl Assessment {
    pub fn new(policy: &Policy, support: LandlockSupport) -> Self {
        let abi = support.abi();
        let mut gaps = Vec::new();
        let mut levels = Vec::new();
        if !policy.restricts_anything() {
            return Self {
                abi,
                status: Status::FullyEnforced,
                gaps,
                restricts_nothing: true,
            };
        }
        if let Some(reason) = support.unavailable_reason() {
            return Self {
                abi,
                status: Status::NotEnforced,
                gaps: vec![Gap::Unavailable(reason)],
                restricts_nothing: false,
            };
        }
        let needs = |what, capability: Capability, gaps: &mut Vec<Gap>| {
            let ok = capability.supported_at(abi);
            if !ok {
                gaps.push(Gap::NeedsAbi {
                    what,
                    abi: capability.since(),
                });
            }
            ok
        };
        if policy.fs.is_some() {
            let truncate = needs("file truncation rules", Capability::Truncate, &mut gaps);
            let ioctl = needs("device ioctl rules", Capability::IoctlDev, &mut gaps);
            levels.push(if truncate && ioctl {
                Level::Full
            } else {
                Level::Partial
            });
        }
        if policy.restricts_tcp() {
            let tcp = needs("TCP rules", Capability::Tcp, &mut gaps);
            // Only worth saying when the rules exist to be bypassed.
            let bypassed = tcp && policy.io_uring_bypasses_tcp();
            if bypassed {
                gaps.push(Gap::IoUringAllowed);
            }
            levels.push(match (tcp, bypassed) {
                (false, _) => Level::None,
                (true, true) => Level::Partial,
                (true, false) => Level::Full,
            });
        }
        if !policy.scope.is_none() {
            let what = match (policy.scope.signal, policy.scope.abstract_unix_socket) {
                (true, true) => "signal and abstract UNIX socket scopes",
                (true, false) => "signal scoping",
                _ => "abstract UNIX socket scoping",
            };
            let scopes = needs(what, Capability::Scopes, &mut gaps);
            levels.push(if scopes { Level::Full } else { Level::None });
        }
        let status = if levels.iter().all(|l| *l == Level::Full) {
            Status::FullyEnforced
        } else if levels.iter().all(|l| *l == Level::None) {
            Status::NotEnforced
        } else {
            Status::PartiallyEnforced
        };
        Self {
            abi,
            status,
            gaps,
            restricts_nothing: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::super::testing::{BASELINE, avail};
    use super::*;

    #[rstest]
    #[case::full(BASELINE, avail(7), "FullyEnforced (abi 7)")]
    #[case::full_at_6(BASELINE, avail(6), "FullyEnforced (abi 6)")]
    #[case::no_scopes(
        BASELINE,
        avail(5),
        "PartiallyEnforced (abi 5: signal and abstract UNIX socket scopes need abi 6)"
    )]
    #[case::no_tcp(
        r#"{"v":1,"fs":{"rx":["/"]},"net":{"bind":[8080]}}"#,
        avail(3),
        "PartiallyEnforced (abi 3: device ioctl rules need abi 5; TCP rules need abi 4)"
    )]
    #[case::fs_partial_only(
        r#"{"v":1,"fs":{"rx":["/"]}}"#,
        avail(1),
        "PartiallyEnforced (abi 1: file truncation rules need abi 3; device ioctl rules need abi 5)"
    )]
    #[case::ports_only_too_old(
        r#"{"v":1,"net":{"bind":[80]}}"#,
        avail(3),
        "NotEnforced (abi 3: TCP rules need abi 4)"
    )]
    #[case::nothing(
        r#"{"v":1}"#,
        avail(7),
        "FullyEnforced (abi 7; the policy restricts nothing)"
    )]
    #[case::io_uring_allowed(
        r#"{"v":1,"net":{"bind":[8080]},"allow_io_uring":true}"#,
        avail(7),
        "PartiallyEnforced (abi 7: allow_io_uring is set, so TCP rules can be bypassed through io_uring (MPTCP sockets, MSG_FASTOPEN sends))"
    )]
    #[case::io_uring_allowed_without_tcp_rules(
        r#"{"v":1,"fs":{"rx":["/"]},"allow_io_uring":true}"#,
        avail(7),
        "FullyEnforced (abi 7)"
    )]
    #[case::io_uring_allowed_below_tcp_abi(
        r#"{"v":1,"net":{"bind":[80]},"allow_io_uring":true}"#,
        avail(3),
        "NotEnforced (abi 3: TCP rules need abi 4)"
    )]
    fn assessment_summaries(
        #[case] policy: &str,
        #[case] support: LandlockSupport,
        #[case] summary: &str,
    ) {
        let policy = Policy::from_json(policy).unwrap();
        assert_eq!(Assessment::new(&policy, support).summary(), summary);
    }
}
