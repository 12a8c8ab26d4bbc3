//! The seccomp filters that close the MPTCP, TCP Fast Open and io_uring
//! holes in Landlock's TCP rules.
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
//! - io_uring: its operations run in the kernel without passing through
//!   seccomp, so both filters above are blind to them (measured on Linux
//!   6.18, ABI 7: under bind `[8080]`, an `IORING_OP_SOCKET` MPTCP socket
//!   bound an undeclared port; under connect `[443]`, an `IORING_OP_SENDMSG`
//!   with `MSG_FASTOPEN` reached one). Whenever a policy restricts bind or
//!   connect and does not set `allow_io_uring`, `io_uring_setup`,
//!   `io_uring_enter` and `io_uring_register` fail with `ENOSYS`, the answer
//!   of a kernel built without io_uring: every io_uring user must already
//!   handle it (io_uring is optional in Linux) and falls back to plain
//!   syscalls, which the filters above and Landlock see.
//!
//! Nothing else is filtered. The filters are separate seccomp programs (one
//! action each, on disjoint syscalls); the kernel runs them all and the one
//! that matches wins.
//!
//! Known limits: with `allow_io_uring`, io_uring is left alone, so
//! `IORING_OP_SOCKET` can create MPTCP sockets that bind and connect past the
//! TCP rules and io_uring sends can use `MSG_FASTOPEN` past the connect rules:
//! the switch effectively gives up TCP enforcement, and the launcher reports
//! it. A ring inherited across the launcher's exec with the `SQPOLL` flag is
//! polled by a kernel thread that needs no syscall while it is awake, so no
//! seccomp filter can stop it (see `IO_URING_SYSCALLS`). And seccompiler's
//! architecture check kills (SIGSYS) any 32-bit i386 program started inside
//! the sandbox, since the filter only knows the native syscall table. These
//! are listed in `landgate features`.

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

/// The io_uring syscalls (425, 426 and 427 on every architecture, x32
/// included: `syscall_64.tbl` lists them as `common`). Refusing
/// `io_uring_setup` alone would stop new rings, but a ring can also be
/// inherited: the launcher execs, so an io_uring fd its parent made without
/// `O_CLOEXEC` (the kernel sets it; the parent would have cleared it) reaches
/// the command. The kernel refuses to pass rings over UNIX sockets since
/// Linux 6.7 (CVE-2023-6531), and Landlock's ptrace scoping keeps
/// `pidfd_getfd` away from processes outside the sandbox, so inheritance is
/// the way left. Refusing `io_uring_enter` too makes such a ring unable to
/// submit or wait (and a parent's registered personality unusable), and
/// refusing `io_uring_register` keeps it from being reconfigured. What no
/// filter can stop is an inherited `SQPOLL` ring: its kernel thread picks up
/// entries written into the mapped ring with no syscall at all (`mmap` of the
/// fd is enough) until it idles, since only waking it needs `io_uring_enter`,
/// and runs them with its creator's credentials, outside the Landlock domain.
/// Only a parent that deliberately clears `O_CLOEXEC` on such a ring exposes
/// it; such a parent is outside the sandbox and trusted by definition.
const IO_URING_SYSCALLS: [i64; 3] = [
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// Which holes to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filters {
    /// `socket(_, _, IPPROTO_MPTCP)` → `EPROTONOSUPPORT` (TCP restricted).
    pub mptcp: bool,
    /// `send*(MSG_FASTOPEN)` → `EOPNOTSUPP` (connect restricted).
    pub fastopen: bool,
    /// `io_uring_setup`/`_enter`/`_register` → `ENOSYS` (TCP restricted and
    /// `allow_io_uring` unset).
    pub io_uring: bool,
}

impl Filters {
    pub fn any(self) -> bool {
        self.mptcp || self.fastopen || self.io_uring
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
    if filters.io_uring {
        // Unconditional: no argument makes a ring safe.
        let mut rules = BTreeMap::new();
        for nr in IO_URING_SYSCALLS {
            rules.insert(nr, Vec::new());
            if x86_64 {
                rules.insert(nr | X32_SYSCALL_BIT, Vec::new());
            }
        }
        // ENOSYS, the kernel's own answer when io_uring is not built in, so
        // the one every io_uring user must handle. Docker's and containerd's
        // default profiles answer EPERM instead (their default action, since
        // moby#46762 and containerd#9320 took io_uring off the allowlist;
        // checked in those pull requests), as does
        // `kernel.io_uring_disabled`. Callers such as libuv fall back on any
        // error, but EPERM says "not allowed for you", which a caller may
        // report, or retry with other setup flags, rather than fall back.
        programs.push(program(rules, libc::ENOSYS, arch)?);
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

    const ALL: Filters = Filters {
        mptcp: true,
        fastopen: true,
        io_uring: true,
    };

    #[test]
    fn filters_compile_for_this_arch() {
        let all = compile(ALL).unwrap();
        assert_eq!(all.len(), 3);
        for program in &all {
            // Arch check, syscall load, a few syscall chains, default allow: small.
            assert!(program.len() < 60, "{} instructions", program.len());
        }
        let none = compile(Filters {
            mptcp: false,
            fastopen: false,
            io_uring: false,
        })
        .unwrap();
        assert!(none.is_empty());
        let io_uring_only = Filters {
            mptcp: false,
            fastopen: false,
            io_uring: true,
        };
        assert!(io_uring_only.any());
    }

    #[test]
    fn io_uring_filter_answers_enosys_for_native_and_x32_numbers() {
        // No x32 kernel here (CONFIG_X86_X32_ABI is off on the test machine),
        // so read the program instead: every number must be compared, and
        // the match must return ERRNO(ENOSYS).
        const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
        const RET_K: u16 = 0x06; // BPF_RET | BPF_K
        const RET_ERRNO: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
        let programs = compile(Filters {
            mptcp: false,
            fastopen: false,
            ..ALL
        })
        .unwrap();
        let [program] = programs.as_slice() else {
            panic!("{} programs", programs.len());
        };
        let compared: Vec<u32> = program
            .iter()
            .filter(|insn| insn.code == JEQ_K)
            .map(|insn| insn.k)
            .collect();
        let mut expected = vec![425, 426, 427];
        if cfg!(target_arch = "x86_64") {
            expected.extend([0x4000_01a9, 0x4000_01aa, 0x4000_01ab]);
        }
        for nr in expected {
            assert!(compared.contains(&nr), "syscall {nr:#x} not filtered");
        }
        assert!(
            program
                .iter()
                .any(|insn| insn.code == RET_K && insn.k == RET_ERRNO | libc::ENOSYS as u32),
            "no ERRNO(ENOSYS) return"
        );
    }
}
