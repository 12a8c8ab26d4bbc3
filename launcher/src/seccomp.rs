//! The seccomp filters that close the MPTCP and TCP Fast Open holes in
//! Landlock's TCP rules.
//!
//! - MPTCP: Landlock's TCP bind/connect rules do not apply to MPTCP sockets
//!   (measured on Linux 6.18, ABI 7: inside a ruleset allowing only bind
//!   8080, an MPTCP socket bound 9090 freely), and Go >= 1.24 listens with
//!   MPTCP by default. Whenever a policy restricts bind or connect, the
//!   launcher makes `socket(_, _, IPPROTO_MPTCP)` fail with
//!   `EPROTONOSUPPORT`, which Go and other MPTCP users treat as "MPTCP
//!   unavailable" and fall back to plain TCP, where Landlock applies.
//! - TCP Fast Open: `sendto`/`sendmsg` with `MSG_FASTOPEN` on an unconnected
//!   TCP socket connects without passing through Landlock's connect hook
//!   (measured on Linux 6.18, ABI 7, `net.ipv4.tcp_fastopen=1`: under
//!   connect `[443]`, `connect(127.0.0.1:9999)` failed `EACCES` but a
//!   `sendto(MSG_FASTOPEN)` to the same address connected). Whenever a policy
//!   restricts connect, `sendto`, `sendmsg` and `sendmmsg` whose flags have
//!   `MSG_FASTOPEN` set fail with `EOPNOTSUPP`; clients that try Fast Open
//!   (e.g. `curl --tcp-fastopen`) get an error instead of a bypass. A
//!   `connect()` made after `setsockopt(TCP_FASTOPEN_CONNECT)` still goes
//!   through `connect()` and Landlock's rule, so it is left alone.
//!
//! Nothing else is filtered. The two filters are separate seccomp programs
//! (one action each); the kernel runs both and the one that matches wins.
//!
//! Known limits: io_uring operations (`IORING_OP_SOCKET`, and sends with
//! `MSG_FASTOPEN`) do not pass through seccomp; and seccompiler's
//! architecture check kills (SIGSYS) any 32-bit i386 program started inside
//! the sandbox, since the filter only knows the native syscall table. Both
//! are rare in container images and are listed in `landgate features`.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// `IPPROTO_MPTCP` from `linux/in.h`.
pub const IPPROTO_MPTCP: u64 = 262;

/// `MSG_FASTOPEN` from `linux/socket.h`.
pub const MSG_FASTOPEN: u64 = 0x2000_0000;

/// x32 syscalls are x86_64 syscalls with this bit set in the number; the
/// arch check passes them, so the x32 variants get their own rules.
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// x32's own numbers for the calls whose x86_64 entries are 64-bit only
/// (`arch/x86/entry/syscalls/syscall_64.tbl`: `x32 sendmsg` is 518,
/// `x32 sendmmsg` is 538). `sendto` (44) is shared.
const X32_SENDMSG: i64 = 518;
const X32_SENDMMSG: i64 = 538;

/// Which holes to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filters {
    /// `socket(_, _, IPPROTO_MPTCP)` → `EPROTONOSUPPORT` (TCP restricted).
    pub mptcp: bool,
    /// `send*(MSG_FASTOPEN)` → `EOPNOTSUPP` (connect restricted).
    pub fastopen: bool,
}

impl Filters {
    pub fn any(self) -> bool {
        self.mptcp || self.fastopen
    }
}

/// A rule list whose single condition is `arg & mask == value` on a 32-bit
/// argument (`mask == value` for a flag bit, all ones for equality).
fn arg_rule(index: u8, op: SeccompCmpOp, value: u64) -> Result<Vec<SeccompRule>, String> {
    let cond = SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
        .map_err(|err| err.to_string())?;
    Ok(vec![
        SeccompRule::new(vec![cond]).map_err(|err| err.to_string())?,
    ])
}

fn program(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    errno: i32,
    arch: TargetArch,
) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .map_err(|err| err.to_string())?;
    BpfProgram::try_from(filter).map_err(|err| err.to_string())
}

/// Compiles the requested filters for the running architecture.
pub fn compile(filters: Filters) -> Result<Vec<BpfProgram>, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|err| err.to_string())?;
    let x86_64 = matches!(arch, TargetArch::x86_64);
    let mut programs = Vec::new();
    if filters.mptcp {
        // socket(domain, type, protocol)
        let is_mptcp = || arg_rule(2, SeccompCmpOp::Eq, IPPROTO_MPTCP);
        let mut rules = BTreeMap::new();
        rules.insert(libc::SYS_socket, is_mptcp()?);
        if x86_64 {
            rules.insert(libc::SYS_socket | X32_SYSCALL_BIT, is_mptcp()?);
        }
        programs.push(program(rules, libc::EPROTONOSUPPORT, arch)?);
    }
    if filters.fastopen {
        let fastopen = |flags_index| {
            arg_rule(
                flags_index,
                SeccompCmpOp::MaskedEq(MSG_FASTOPEN),
                MSG_FASTOPEN,
            )
        };
        let mut rules = BTreeMap::new();
        // sendto(fd, buf, len, flags, addr, addrlen)
        rules.insert(libc::SYS_sendto, fastopen(3)?);
        // sendmsg(fd, msg, flags)
        rules.insert(libc::SYS_sendmsg, fastopen(2)?);
        // sendmmsg(fd, msgvec, vlen, flags)
        rules.insert(libc::SYS_sendmmsg, fastopen(3)?);
        if x86_64 {
            rules.insert(libc::SYS_sendto | X32_SYSCALL_BIT, fastopen(3)?);
            rules.insert(X32_SENDMSG | X32_SYSCALL_BIT, fastopen(2)?);
            rules.insert(X32_SENDMMSG | X32_SYSCALL_BIT, fastopen(3)?);
        }
        programs.push(program(rules, libc::EOPNOTSUPP, arch)?);
    }
    Ok(programs)
}

/// Installs the filters on the calling thread (the launcher is
/// single-threaded and about to exec; children inherit them). Sets
/// no_new_privs, which Landlock needs anyway.
pub fn install(filters: Filters) -> Result<(), String> {
    for program in compile(filters)? {
        seccompiler::apply_filter(&program).map_err(|err| err.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_for_this_arch() {
        let both = compile(Filters {
            mptcp: true,
            fastopen: true,
        })
        .unwrap();
        assert_eq!(both.len(), 2);
        for program in &both {
            // Arch check, syscall load, a few syscall chains, default allow: small.
            assert!(program.len() < 60, "{} instructions", program.len());
        }
        let none = compile(Filters {
            mptcp: false,
            fastopen: false,
        })
        .unwrap();
        assert!(none.is_empty());
    }
}
