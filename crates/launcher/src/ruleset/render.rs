//! What the launcher prints about a [`Plan`]: a warning per skipped path,
//! and the ruleset as `landgate check` (and `exec --dry-run`) lists it.

use std::fmt::Write as _;

use landgate_policy::Port;
use landlock::{AccessFs, BitFlags, Scope};

use super::assess::Capability;
use super::plan::Plan;
use crate::features::FS_RIGHTS;

/// What `landgate check` lists as not restricted by any policy.
pub const NOT_RESTRICTED: &str = "UDP, SCTP and raw sockets; listen() on a kernel-chosen ephemeral port (a socket listening without bind(), or bound to port 0 unless bind_ephemeral is false) even when bind is restricted";

impl Plan {
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
                Some(ports) => {
                    writeln!(out, "{name}: only {}{tcp_gap}", port_list(ports.as_slice()))
                }
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
}

fn rights(access: BitFlags<AccessFs>) -> String {
    if access.is_empty() {
        return "nothing".to_owned();
    }
    FS_RIGHTS
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
