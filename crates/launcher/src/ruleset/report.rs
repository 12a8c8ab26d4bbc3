//! What an [`Assessment`] tells the operator: the [`Status`] and its
//! [`Gap`]s, the status line, whether `enforcement: required` may run, and
//! the refusal when it may not.

use std::fmt;

use super::assess::Assessment;
use crate::error::LaunchError;
use crate::features::linux_release_for;

/// The enforcement status, named as the `landlock` crate and kernel docs do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    FullyEnforced,
    PartiallyEnforced,
    NotEnforced,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FullyEnforced => "FullyEnforced",
            Self::PartiallyEnforced => "PartiallyEnforced",
            Self::NotEnforced => "NotEnforced",
        })
    }
}

/// One requested restriction the kernel cannot enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// Landlock itself is missing; the reason says what to do.
    Unavailable(&'static str),
    /// `what` needs Landlock ABI `abi`.
    NeedsAbi { what: &'static str, abi: u32 },
    /// The seccomp filters could not be installed.
    Seccomp(String),
    /// The policy restricts TCP and sets `allow_io_uring`, which leaves a
    /// way around the TCP rules.
    IoUringAllowed,
}

impl Gap {
    /// Whether the policy itself asked for this gap: `required` accepts
    /// those, since nothing about the node would close them.
    pub fn chosen_by_policy(&self) -> bool {
        matches!(self, Self::IoUringAllowed)
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(reason) => f.write_str(reason),
            Self::NeedsAbi { what, abi } => write!(f, "{what} need abi {abi}"),
            Self::Seccomp(err) => write!(
                f,
                "seccomp filter failed ({err}): TCP rules can be bypassed with MPTCP, TCP Fast Open or io_uring"
            ),
            Self::IoUringAllowed => f.write_str(
                "allow_io_uring is set, so TCP rules can be bypassed through io_uring (MPTCP sockets, MSG_FASTOPEN sends)",
            ),
        }
    }
}

impl Assessment {
    /// The status and why, e.g. `PartiallyEnforced (abi 3: TCP rules need abi 4)`.
    pub fn summary(&self) -> String {
        if self.restricts_nothing {
            return format!(
                "{} (abi {}; the policy restricts nothing)",
                self.status, self.abi
            );
        }
        let gaps = self
            .gaps
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        match self.gaps.first() {
            None => format!("{} (abi {})", self.status, self.abi),
            Some(Gap::Unavailable(_)) => format!("{} ({gaps})", self.status),
            Some(_) => format!("{} (abi {}: {gaps})", self.status, self.abi),
        }
    }

    /// Whether `enforcement: required` may run the command: the status is
    /// full, or falls short only by gaps the policy chose itself.
    pub fn meets_required(&self) -> bool {
        self.status == Status::FullyEnforced
            || (!self.gaps.is_empty() && self.gaps.iter().all(Gap::chosen_by_policy))
    }

    /// The lowest ABI that would enforce everything asked, if one would.
    pub fn needed_abi(&self) -> Option<u32> {
        self.gaps
            .iter()
            .filter_map(|g| match g {
                Gap::NeedsAbi { abi, .. } => Some(*abi),
                _ => None,
            })
            .max()
    }

    /// The error `enforcement: required` gets when the status is not full.
    pub fn refusal(&self, what: &str) -> LaunchError {
        let fix = match self.needed_abi() {
            Some(abi) => format!(
                "run it on a node whose kernel offers Landlock ABI >= {abi} (Linux >= {}), or set the landgate.dev/enforcement annotation to best-effort",
                linux_release_for(abi)
            ),
            None => "fix the node (see above), or set the landgate.dev/enforcement annotation to best-effort".to_owned(),
        };
        LaunchError::EnforcementRequired {
            what: what.to_owned(),
            reached: self.summary(),
            fix,
        }
    }
}

#[cfg(test)]
mod tests {
    use landgate_policy::Policy;

    use super::super::testing::{BASELINE, avail};
    use super::*;
    use crate::kernel::LandlockSupport;

    #[test]
    fn required_accepts_only_the_gaps_a_policy_chose() {
        let allowed = Policy::from_json(
            r#"{"v":1,"enforcement":"required","net":{"connect":[443]},"allow_io_uring":true}"#,
        )
        .unwrap();
        let a = Assessment::new(&allowed, avail(7));
        assert_eq!(a.status, Status::PartiallyEnforced);
        assert_eq!(a.gaps, [Gap::IoUringAllowed]);
        assert!(a.meets_required());
        assert_eq!(a.needed_abi(), None);
        // A kernel gap on top is still refused.
        let with_scopes = Policy::from_json(
            r#"{"v":1,"net":{"bind":[80]},"scope":{"signal":true},"allow_io_uring":true}"#,
        )
        .unwrap();
        let a = Assessment::new(&with_scopes, avail(5));
        assert_eq!(a.gaps.len(), 2, "{:?}", a.gaps);
        assert!(!a.meets_required());
        let baseline = Policy::from_json(BASELINE).unwrap();
        assert!(Assessment::new(&baseline, avail(7)).meets_required());
        assert!(!Assessment::new(&baseline, avail(5)).meets_required());
    }

    #[test]
    fn no_landlock_is_not_enforced_with_the_reason() {
        let policy = Policy::from_json(BASELINE).unwrap();
        let a = Assessment::new(&policy, LandlockSupport::NotEnabled);
        assert_eq!(a.status, Status::NotEnforced);
        assert!(a.summary().contains("lsm="), "{}", a.summary());
        assert_eq!(a.needed_abi(), None);
        let refusal = a.refusal("/bin/true").to_string();
        assert!(refusal.contains("best-effort"), "{refusal}");
    }

    #[test]
    fn refusal_names_the_abi_and_kernel_to_run() {
        let policy = Policy::from_json(BASELINE).unwrap();
        let a = Assessment::new(&policy, avail(3));
        assert_eq!(a.needed_abi(), Some(6));
        let refusal = a.refusal("nginx").to_string();
        assert!(refusal.contains("ABI >= 6 (Linux >= 6.12)"), "{refusal}");
        assert!(refusal.contains("refusing to run nginx"), "{refusal}");
    }
}
