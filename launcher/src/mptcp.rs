//! The seccomp filter that closes the MPTCP hole in Landlock's TCP rules.
//!
//! Landlock's TCP bind/connect rules do not apply to MPTCP sockets (measured
//! on Linux 6.18, ABI 7: inside a ruleset allowing only bind 8080, an MPTCP
//! socket bound 9090 freely), and Go >= 1.24 listens with MPTCP by default.
//! Whenever a policy restricts bind or connect, the launcher makes
//! `socket(_, _, IPPROTO_MPTCP)` fail with `EPROTONOSUPPORT`, which Go and
//! other MPTCP users treat as "MPTCP unavailable" and fall back to plain TCP,
//! where Landlock applies. Nothing else is filtered.
//!
//! Known limits: sockets created through io_uring (`IORING_OP_SOCKET`) do not
//! pass through seccomp; and seccompiler's architecture check kills (SIGSYS)
//! any 32-bit i386 program started inside the sandbox, since the filter only
//! knows the native syscall table. Both are rare in container images and are
//! listed in `landgate features`.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// `IPPROTO_MPTCP` from `linux/in.h`.
pub const IPPROTO_MPTCP: u64 = 262;

/// x32 syscalls are x86_64 syscalls with this bit set in the number; the
/// arch check passes them, so the x32 `socket` gets its own rule.
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// Compiles the filter for the running architecture.
pub fn compile() -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|err| err.to_string())?;
    let protocol_is_mptcp = || -> Result<Vec<SeccompRule>, String> {
        let cond = SeccompCondition::new(
            2, // socket(domain, type, protocol)
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            IPPROTO_MPTCP,
        )
        .map_err(|err| err.to_string())?;
        Ok(vec![
            SeccompRule::new(vec![cond]).map_err(|err| err.to_string())?,
        ])
    };
    let mut rules = BTreeMap::new();
    rules.insert(libc::SYS_socket, protocol_is_mptcp()?);
    if matches!(arch, TargetArch::x86_64) {
        rules.insert(libc::SYS_socket | X32_SYSCALL_BIT, protocol_is_mptcp()?);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPROTONOSUPPORT as u32),
        arch,
    )
    .map_err(|err| err.to_string())?;
    BpfProgram::try_from(filter).map_err(|err| err.to_string())
}

/// Installs the filter on the calling thread (the launcher is
/// single-threaded and about to exec; children inherit it). Sets
/// no_new_privs, which Landlock needs anyway.
pub fn install() -> Result<(), String> {
    let program = compile()?;
    seccompiler::apply_filter(&program).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_compiles_for_this_arch() {
        let program = compile().unwrap();
        assert!(!program.is_empty());
        // Arch check, syscall load, two syscall chains, default allow: small.
        assert!(program.len() < 40, "{} instructions", program.len());
    }
}
