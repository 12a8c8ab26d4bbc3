//! Policy → Landlock ruleset: what the kernel can enforce of a policy (the
//! [`Assessment`]), the opened rules ([`Plan`]), and applying them.
//!
//! Every rule about what a sandboxed process may do at runtime lives here:
//! - `fs.rx` paths get read + execute (`from_read`) plus, when the ABI
//!   handles it, connecting to named UNIX sockets (`resolve_unix`, ABI 9:
//!   a read-only path must not stop a client from reaching a socket there),
//!   `fs.rw` paths every right the kernel's ABI handles; rules on non-directories keep only the
//!   rights that make sense for a file. Everything else is denied for every
//!   filesystem right the kernel's ABI handles (the highest ABI it offers).
//! - TCP bind/connect are handled only when the policy restricts them (a
//!   `null` list leaves them unrestricted); bind includes port 0 unless
//!   `bind_ephemeral` is false.
//! - Scopes as asked. UDP rights (ABI 10) are never handled: policy v1 has no
//!   UDP rules, so handling them would deny all UDP.
//! - io_uring is refused (seccomp) whenever TCP is restricted, unless the
//!   policy sets `allow_io_uring`.
//!
//! "FullyEnforced" means every restriction landgate policy v1 defines is
//! enforced: filesystem rules with truncation (ABI 3) and device ioctl
//! (ABI 5) control, TCP rules (ABI 4) that io_uring cannot get around,
//! scopes (ABI 6). Rights that newer kernels add (e.g. ABI 9's named UNIX
//! socket resolution) are handled when the kernel offers them, but their
//! absence is not a gap. `allow_io_uring` with TCP rules is a gap the policy
//! chose: the status is PartiallyEnforced, and `required` still runs.

use std::fmt;
use std::fmt::Write as _;
use std::io;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    RestrictionStatus, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::error::LaunchError;
use crate::features::{LOG_FLAGS_SINCE, fs_since, linux_release_for, net_since, scope_since};
use crate::kernel::LandlockSupport;
use landgate_policy::{AbsPath, Enforcement, Policy, Port, PortSet};
use crate::seccomp::{self, Filters};

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

    /// Records a gap found while applying (the seccomp filter failed).
    fn degrade(&mut self, gap: Gap) {
        if self.status == Status::FullyEnforced {
            self.status = Status::PartiallyEnforced;
        }
        self.gaps.push(gap);
    }

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

/// A policy path, opened.
#[derive(Debug)]
pub struct PathRule {
    /// `fs.rx` or `fs.rw`.
    pub field: &'static str,
    pub path: AbsPath,
    pub access: BitFlags<AccessFs>,
    pub is_dir: bool,
    fd: PathFd,
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

    /// One warning line per skipped path.
    pub fn warnings(&self) -> Vec<String> {
        self.fs
            .iter()
            .flat_map(|fs| &fs.skipped)
            .map(|(field, path)| format!("{field} path {path} does not exist; its rule is skipped"))
            .collect()
    }

    /// The ruleset as `landgate check` prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "landlock: {}", self.support);
        let _ = writeln!(out, "enforcement: {}", self.enforcement);
        match &self.fs {
            None => {
                let _ = writeln!(out, "filesystem: unrestricted");
            }
            Some(fs) => {
                let _ = writeln!(
                    out,
                    "filesystem: deny {} beneath every path not listed",
                    rights(fs.handled)
                );
                for rule in &fs.rules {
                    let kind = if rule.is_dir { "" } else { " (file)" };
                    let _ = writeln!(
                        out,
                        "  {}  {}{kind}: {}",
                        rule.field,
                        rule.path,
                        rights(rule.access)
                    );
                }
                for (field, path) in &fs.skipped {
                    let _ = writeln!(out, "  {field}  {path}: skipped, does not exist");
                }
            }
        }
        let tcp_gap = if self.tcp_supported() {
            String::new()
        } else {
            format!(" (not enforced: needs abi {})", Capability::Tcp.since())
        };
        for (name, ports) in [("tcp bind", &self.bind), ("tcp connect", &self.connect)] {
            let _ = match ports {
                None => writeln!(out, "{name}: unrestricted"),
                Some(ports) => writeln!(out, "{name}: only {}{tcp_gap}", port_list(ports.as_slice())),
            };
        }
        let _ = writeln!(
            out,
            "mptcp: {}",
            if self.seccomp.mptcp {
                "socket(IPPROTO_MPTCP) fails with EPROTONOSUPPORT (seccomp), so MPTCP users fall back to TCP"
            } else {
                "allowed (TCP is unrestricted)"
            }
        );
        let _ = writeln!(
            out,
            "tcp fast open: {}",
            if self.seccomp.fastopen {
                "sendto/sendmsg/sendmmsg with MSG_FASTOPEN fail with EOPNOTSUPP (seccomp), so Fast Open cannot bypass the connect rules"
            } else {
                "allowed (TCP connect is unrestricted)"
            }
        );
        let _ = writeln!(
            out,
            "io_uring: {}",
            match (self.seccomp.io_uring, self.io_uring_allowed) {
                (true, _) =>
                    "io_uring_setup, io_uring_enter and io_uring_register fail with ENOSYS (seccomp), so io_uring users fall back to plain syscalls",
                (false, true) =>
                    "allowed by allow_io_uring: TCP bind/connect rules can be bypassed through io_uring (MPTCP sockets from IORING_OP_SOCKET, MSG_FASTOPEN sends)",
                (false, false) => "allowed (TCP is unrestricted)",
            }
        );
        let scope_names: Vec<&str> = [
            (Scope::Signal, "signal"),
            (Scope::AbstractUnixSocket, "abstract_unix_socket"),
        ]
        .iter()
        .filter(|(s, _)| self.scopes.contains(*s))
        .map(|(_, n)| *n)
        .collect();
        let _ = writeln!(
            out,
            "scopes: {}",
            if scope_names.is_empty() {
                "none".to_owned()
            } else {
                scope_names.join(", ")
            }
        );
        let _ = writeln!(
            out,
            "denial logging: {}",
            match (self.log_denials, self.supports(Capability::DenialLogging)) {
                (true, true) => "on, including after exec".to_owned(),
                (false, true) => "off".to_owned(),
                (_, false) => format!(
                    "kernel default (needs abi {} to configure)",
                    Capability::DenialLogging.since()
                ),
            }
        );
        let _ = writeln!(out, "not restricted: {}", NOT_RESTRICTED);
        let _ = writeln!(out, "status: {}", self.assessment.summary());
        out
    }

    /// Installs the seccomp filters and restricts the calling thread. After
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
        let mut assessment = self.assessment.clone();
        let status = self.restrict()?;
        if status.ruleset != RulesetStatus::FullyEnforced || !status.no_new_privs {
            // Cannot happen with HardRequirement (the crate errors instead);
            // kept so that a crate change cannot make a silent downgrade.
            assessment.degrade(Gap::Unavailable(
                "the landlock crate reported a partial restriction",
            ));
        }
        Ok(assessment)
    }

    fn supports(&self, capability: Capability) -> bool {
        capability.supported_at(self.support.abi())
    }

    fn tcp_supported(&self) -> bool {
        self.supports(Capability::Tcp)
    }

    fn scopes_supported(&self) -> bool {
        self.supports(Capability::Scopes)
    }

    fn handles_anything(&self) -> bool {
        self.fs.as_ref().is_some_and(|fs| !fs.handled.is_empty())
            || (self.tcp_supported() && (self.bind.is_some() || self.connect.is_some()))
            || (self.scopes_supported() && !self.scopes.is_empty())
    }

    fn restrict(self) -> Result<RestrictionStatus, LaunchError> {
        let tcp = self.tcp_supported();
        let configure_logging = self.supports(Capability::DenialLogging);
        let mut handled_net = BitFlags::<AccessNet>::empty();
        if tcp && self.bind.is_some() {
            handled_net |= AccessNet::BindTcp;
        }
        if tcp && self.connect.is_some() {
            handled_net |= AccessNet::ConnectTcp;
        }
        // Only rights this ABI supports are requested, so a hard requirement
        // turns any disagreement with the crate's own probe into an error
        // instead of a silent downgrade.
        let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
        if let Some(fs) = &self.fs {
            ruleset = ruleset.handle_access(fs.handled)?;
        }
        if !handled_net.is_empty() {
            ruleset = ruleset.handle_access(handled_net)?;
        }
        if self.scopes_supported() && !self.scopes.is_empty() {
            ruleset = ruleset.scope(self.scopes)?;
        }
        let mut created = ruleset.create()?;
        if let Some(fs) = self.fs {
            for rule in fs.rules {
                created = created.add_rule(PathBeneath::new(rule.fd, rule.access))?;
            }
        }
        if tcp {
            for (ports, access) in [
                (&self.bind, AccessNet::BindTcp),
                (&self.connect, AccessNet::ConnectTcp),
            ] {
                for port in ports.iter().flatten() {
                    created = created.add_rule(NetPort::new(port.get(), access))?;
                }
            }
        }
        if configure_logging {
            // By default the kernel logs denials only until the next execve,
            // i.e. the launcher's own; the command's are what operators need.
            created = created
                .log_new_exec(self.log_denials)?
                .log_same_exec(self.log_denials)?;
        }
        match created.restrict_self() {
            Ok(status) => Ok(status),
            Err(landlock::RulesetError::RestrictSelf(
                landlock::RestrictSelfError::RestrictSelfCall { source, .. },
            )) if source.raw_os_error() == Some(libc::E2BIG) => Err(LaunchError::TooManyLayers),
            Err(err) => Err(err.into()),
        }
    }
}

/// What `landgate check` lists as not restricted by any policy.
pub const NOT_RESTRICTED: &str = "UDP, SCTP and raw sockets; listen() on a kernel-chosen ephemeral port (a socket listening without bind(), or bound to port 0 unless bind_ephemeral is false) even when bind is restricted";

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
    let fd = match PathFd::new(path) {
        Ok(fd) => fd,
        Err(landlock::PathFdError::OpenCall { source, .. }) => {
            return match source.raw_os_error() {
                // ENOTDIR: a parent is not a directory, so the path does not
                // exist either.
                Some(libc::ENOENT | libc::ENOTDIR) => Ok(None),
                _ => Err(unopenable(source)),
            };
        }
        Err(other) => return Err(unopenable(io::Error::other(other.to_string()))),
    };
    // fstat on the O_PATH descriptor: the same file the rule will name.
    let is_dir = {
        use std::os::fd::AsFd;
        let owned = fd.as_fd().try_clone_to_owned().map_err(unopenable)?;
        std::fs::File::from(owned)
            .metadata()
            .map_err(unopenable)?
            .is_dir()
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

fn rights(access: BitFlags<AccessFs>) -> String {
    if access.is_empty() {
        return "nothing".to_owned();
    }
    crate::features::FS_RIGHTS
        .iter()
        .filter(|(_, r)| access.contains(*r))
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn port_list(ports: &[Port]) -> String {
    if ports.is_empty() {
        return "none".to_owned();
    }
    ports
        .iter()
        .map(|p| {
            if p.get() == 0 {
                "0 (ephemeral)".to_owned()
            } else {
                p.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn avail(abi: u32) -> LandlockSupport {
        LandlockSupport::Available {
            abi,
            kernel_abi: abi,
        }
    }

    const BASELINE: &str = r#"{"v":1,"fs":{"rx":["/"],"rw":["/tmp"]},"net":{"bind":[8080]},"scope":{"signal":true,"abstract_unix_socket":true}}"#;

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
