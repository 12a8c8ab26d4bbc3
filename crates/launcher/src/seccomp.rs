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
//! Nothing else is filtered. The filters are one classic BPF program,
//! assembled at compile time for each combination of [`Filters`] (there are
//! eight): attaching a seccomp program costs the kernel tens of microseconds
//! (it validates it, compiles it and emulates it once per syscall number to
//! build its allow cache), so the launcher attaches one short program and
//! builds nothing at run time. The tests run it beside seccompiler's
//! compilation of the same rules, for every syscall number.
//!
//! Known limits: with `allow_io_uring`, io_uring is left alone, so
//! `IORING_OP_SOCKET` can create MPTCP sockets that bind and connect past the
//! TCP rules and io_uring sends can use `MSG_FASTOPEN` past the connect rules:
//! the switch effectively gives up TCP enforcement, and the launcher reports
//! it. A ring inherited across the launcher's exec with the `SQPOLL` flag is
//! polled by a kernel thread that needs no syscall while it is awake, so no
//! seccomp filter can stop it (see `IO_URING_SYSCALLS`). And the
//! architecture check kills (SIGSYS) any 32-bit i386 program started inside
//! the sandbox, since the filter only knows the native syscall table. These
//! are listed in `landgate features`.

/// `IPPROTO_MPTCP` from `linux/in.h`.
pub const IPPROTO_MPTCP: u64 = 262;

/// `MSG_FASTOPEN` from `linux/socket.h`.
pub const MSG_FASTOPEN: u64 = 0x2000_0000;

/// x32 syscalls are x86_64 syscalls with this bit set in the number; the
/// arch check passes them, so the x32 variants get their own rules.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// x32's own numbers for the calls whose x86_64 entries are 64-bit only
/// (`arch/x86/entry/syscalls/syscall_64.tbl`: `x32 sendmsg` is 518,
/// `x32 sendmmsg` is 538). `sendto` (44) is shared.
const X32_SENDMSG: u32 = 518;
const X32_SENDMMSG: u32 = 538;

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
const IO_URING_SYSCALLS: [u32; 3] = [
    libc::SYS_io_uring_setup as u32,
    libc::SYS_io_uring_enter as u32,
    libc::SYS_io_uring_register as u32,
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
    pub const fn any(self) -> bool {
        self.mptcp || self.fastopen || self.io_uring
    }

    const fn index(self) -> usize {
        self.mptcp as usize | (self.fastopen as usize) << 1 | (self.io_uring as usize) << 2
    }

    const fn from_index(i: usize) -> Self {
        Self {
            mptcp: i & 1 != 0,
            fastopen: i & 2 != 0,
            io_uring: i & 4 != 0,
        }
    }
}

/// One classic BPF instruction: the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// linux/filter.h, linux/seccomp.h.
const LD_ABS_W: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
/// `struct seccomp_data`: `nr`, `arch`, then the arguments (the low 32 bits
/// of argument `i` at `16 + 8 * i` on little-endian machines).
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_low(index: u32) -> u32 {
    16 + 8 * index
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: u32 = 0; // no program: `install` refuses

/// The longest program (every filter): the architecture check and the
/// number load (5 with the x32 split), 8 dispatch instructions per ABI, and
/// the handlers (4 + 4 + 4 + 1). Exact, since the eight programs live in
/// the binary; a longer one fails the build (const evaluation).
const MAX_LEN: usize = 34;

/// An assembled program.
#[derive(Clone, Copy)]
pub struct Program {
    insns: [Insn; MAX_LEN],
    len: usize,
}

impl Program {
    pub fn insns(&self) -> &[Insn] {
        &self.insns[..self.len]
    }
}

/// Where a dispatch jump goes: a handler, emitted after all the dispatch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    None,
    Mptcp,
    /// `MSG_FASTOPEN` in the flags argument 2 (`sendmsg`) or 3 (`sendto`,
    /// `sendmmsg`).
    Fastopen2,
    Fastopen3,
    /// An io_uring syscall.
    IoUring,
}

const HANDLERS: [Target; 4] = [
    Target::Mptcp,
    Target::Fastopen2,
    Target::Fastopen3,
    Target::IoUring,
];

struct Asm {
    insns: [Insn; MAX_LEN],
    /// The handler each dispatch jump (`jt`) goes to, patched at the end.
    targets: [Target; MAX_LEN],
    len: usize,
}

impl Asm {
    const fn emit(&mut self, code: u16, k: u32, jt: u8, jf: u8, target: Target) {
        self.insns[self.len] = Insn { code, jt, jf, k };
        self.targets[self.len] = target;
        self.len += 1;
    }

    /// The checks on syscall numbers carrying `bit` (0 native, the x32 bit
    /// for x32), then ALLOW.
    const fn dispatch(&mut self, filters: Filters, bit: u32, sendmsg: u32, sendmmsg: u32) {
        if filters.mptcp {
            self.emit(JEQ_K, bit | libc::SYS_socket as u32, 0, 0, Target::Mptcp);
        }
        if filters.fastopen {
            self.emit(
                JEQ_K,
                bit | libc::SYS_sendto as u32,
                0,
                0,
                Target::Fastopen3,
            );
            self.emit(JEQ_K, bit | sendmsg, 0, 0, Target::Fastopen2);
            self.emit(JEQ_K, bit | sendmmsg, 0, 0, Target::Fastopen3);
        }
        if filters.io_uring {
            let mut i = 0;
            while i < IO_URING_SYSCALLS.len() {
                self.emit(JEQ_K, bit | IO_URING_SYSCALLS[i], 0, 0, Target::IoUring);
                i += 1;
            }
        }
        self.emit(RET_K, RET_ALLOW, 0, 0, Target::None);
    }

    /// `jt` of every dispatch jump to `target`, now at `at`.
    const fn patch(&mut self, target: Target, at: usize) {
        let mut i = 0;
        while i < self.len {
            if self.targets[i] as u8 == target as u8 && i < at {
                self.insns[i].jt = (at - i - 1) as u8;
            }
            i += 1;
        }
    }

    /// A handler: load the argument, test it, refuse with `errno` on a
    /// match, allow otherwise.
    const fn arg_handler(&mut self, target: Target, load: u32, test: u16, k: u32, errno: i32) {
        self.patch(target, self.len);
        self.emit(LD_ABS_W, load, 0, 0, Target::None);
        self.emit(test, k, 0, 1, Target::None);
        self.emit(RET_K, RET_ERRNO | errno as u32, 0, 0, Target::None);
        self.emit(RET_K, RET_ALLOW, 0, 0, Target::None);
    }
}

/// The program for `filters`; the checks of an unset filter are left out.
/// Always starts with the architecture check (another architecture's
/// syscall numbers mean other calls: killed, as seccompiler does).
pub const fn assemble(filters: Filters) -> Program {
    let mut asm = Asm {
        insns: [Insn {
            code: 0,
            jt: 0,
            jf: 0,
            k: 0,
        }; MAX_LEN],
        targets: [Target::None; MAX_LEN],
        len: 0,
    };
    asm.emit(LD_ABS_W, ARCH, 0, 0, Target::None);
    asm.emit(JEQ_K, AUDIT_ARCH, 1, 0, Target::None);
    asm.emit(RET_K, RET_KILL_PROCESS, 0, 0, Target::None);
    asm.emit(LD_ABS_W, NR, 0, 0, Target::None);
    if cfg!(target_arch = "x86_64") {
        // x32 numbers (the x32 bit set) are checked apart, so that a native
        // number walks only the native checks.
        let jset = asm.len;
        asm.emit(JSET_K, X32_SYSCALL_BIT, 0, 0, Target::None);
        asm.dispatch(
            filters,
            0,
            libc::SYS_sendmsg as u32,
            libc::SYS_sendmmsg as u32,
        );
        asm.insns[jset].jt = (asm.len - jset - 1) as u8;
        asm.dispatch(filters, X32_SYSCALL_BIT, X32_SENDMSG, X32_SENDMMSG);
    } else {
        asm.dispatch(
            filters,
            0,
            libc::SYS_sendmsg as u32,
            libc::SYS_sendmmsg as u32,
        );
    }
    let mut h = 0;
    while h < HANDLERS.len() {
        match HANDLERS[h] {
            Target::Mptcp if filters.mptcp => {
                // socket(domain, type, protocol)
                asm.arg_handler(
                    Target::Mptcp,
                    arg_low(2),
                    JEQ_K,
                    IPPROTO_MPTCP as u32,
                    libc::EPROTONOSUPPORT,
                );
            }
            // sendmsg(fd, msg, flags)
            Target::Fastopen2 if filters.fastopen => asm.arg_handler(
                Target::Fastopen2,
                arg_low(2),
                JSET_K,
                MSG_FASTOPEN as u32,
                libc::EOPNOTSUPP,
            ),
            // sendto(fd, buf, len, flags, ..), sendmmsg(fd, vec, vlen, flags)
            Target::Fastopen3 if filters.fastopen => asm.arg_handler(
                Target::Fastopen3,
                arg_low(3),
                JSET_K,
                MSG_FASTOPEN as u32,
                libc::EOPNOTSUPP,
            ),
            Target::IoUring if filters.io_uring => {
                // Unconditional: no argument makes a ring safe. ENOSYS,
                // the kernel's own answer when io_uring is not built in, so
                // the one every io_uring user must handle. Docker's and
                // containerd's default profiles answer EPERM instead (their
                // default action, since moby#46762 and containerd#9320 took
                // io_uring off the allowlist; checked in those pull
                // requests), as does `kernel.io_uring_disabled`. Callers
                // such as libuv fall back on any error, but EPERM says "not
                // allowed for you", which a caller may report, or retry
                // with other setup flags, rather than fall back.
                asm.patch(Target::IoUring, asm.len);
                asm.emit(RET_K, RET_ERRNO | libc::ENOSYS as u32, 0, 0, Target::None);
            }
            _ => {}
        }
        h += 1;
    }
    Program {
        insns: asm.insns,
        len: asm.len,
    }
}

/// The eight programs, indexed by [`Filters::index`], assembled at compile
/// time.
static PROGRAMS: [Program; 8] = {
    let mut programs = [assemble(Filters::from_index(0)); 8];
    let mut i = 1;
    while i < 8 {
        programs[i] = assemble(Filters::from_index(i));
        i += 1;
    }
    programs
};

/// The program for `filters` (`None`: nothing to filter).
pub fn program(filters: Filters) -> Option<&'static Program> {
    filters.any().then(|| &PROGRAMS[filters.index()])
}

/// Installs the filters on the calling thread (the launcher is
/// single-threaded and about to exec; children inherit them). Sets
/// no_new_privs, which Landlock needs anyway.
#[allow(unsafe_code)]
pub fn install(filters: Filters) -> Result<(), String> {
    let Some(program) = program(filters) else {
        return Ok(());
    };
    if AUDIT_ARCH == 0 {
        return Err(format!("no seccomp program for {}", std::env::consts::ARCH));
    }
    let insns = program.insns();
    let fprog = libc::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_ptr().cast_mut().cast(),
    };
    // SAFETY: prctl with integer arguments reads no memory.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "cannot set no_new_privs: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `fprog` points at `insns.len()` instructions laid out as the
    // kernel's `struct sock_filter` (`Insn` is `repr(C)` with its fields),
    // alive in a static for the duration of the call; the kernel copies them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &raw const fprog,
        )
    };
    if ret != 0 {
        return Err(format!(
            "Error calling `seccomp`: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };

    use super::*;

    const ALL: Filters = Filters {
        mptcp: true,
        fastopen: true,
        io_uring: true,
    };

    /// The same rules compiled by seccompiler, as the launcher did before
    /// it assembled its own program: one program per filter.
    fn reference(filters: Filters) -> Vec<BpfProgram> {
        let arg_rule = |index: u8, op: SeccompCmpOp, value: u64| {
            let cond = SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value).unwrap();
            vec![SeccompRule::new(vec![cond]).unwrap()]
        };
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let program = |rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32| {
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(errno as u32),
                arch,
            )
            .unwrap();
            BpfProgram::try_from(filter).unwrap()
        };
        let x32 = |nr: i64| nr | i64::from(X32_SYSCALL_BIT);
        let x86_64 = cfg!(target_arch = "x86_64");
        let mut programs = Vec::new();
        if filters.mptcp {
            let mut rules = BTreeMap::new();
            let is_mptcp = || arg_rule(2, SeccompCmpOp::Eq, IPPROTO_MPTCP);
            rules.insert(libc::SYS_socket, is_mptcp());
            if x86_64 {
                rules.insert(x32(libc::SYS_socket), is_mptcp());
            }
            programs.push(program(rules, libc::EPROTONOSUPPORT));
        }
        if filters.fastopen {
            let fastopen = |i| arg_rule(i, SeccompCmpOp::MaskedEq(MSG_FASTOPEN), MSG_FASTOPEN);
            let mut rules = BTreeMap::new();
            rules.insert(libc::SYS_sendto, fastopen(3));
            rules.insert(libc::SYS_sendmsg, fastopen(2));
            rules.insert(libc::SYS_sendmmsg, fastopen(3));
            if x86_64 {
                rules.insert(x32(libc::SYS_sendto), fastopen(3));
                rules.insert(x32(X32_SENDMSG.into()), fastopen(2));
                rules.insert(x32(X32_SENDMMSG.into()), fastopen(3));
            }
            programs.push(program(rules, libc::EOPNOTSUPP));
        }
        if filters.io_uring {
            let mut rules = BTreeMap::new();
            for nr in IO_URING_SYSCALLS {
                rules.insert(nr.into(), Vec::new());
                if x86_64 {
                    rules.insert(x32(nr.into()), Vec::new());
                }
            }
            programs.push(program(rules, libc::ENOSYS));
        }
        programs
    }

    /// `struct seccomp_data` as the program reads it: 32-bit words.
    fn word(arch: u32, nr: u32, args: &[u64; 6], offset: u32) -> u32 {
        match offset {
            NR => nr,
            ARCH => arch,
            o if (16..64).contains(&o) => {
                let arg = args[(o as usize - 16) / 8];
                if o % 8 == 0 {
                    arg as u32
                } else {
                    (arg >> 32) as u32
                }
            }
            o => panic!("load at {o}"),
        }
    }

    /// A classic BPF interpreter for what seccomp programs use.
    fn run(program: &[(u16, u8, u8, u32)], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let (code, jt, jf, k) = program[pc];
            let jump = |taken: bool| pc + 1 + usize::from(if taken { jt } else { jf });
            pc = match code {
                0x20 => {
                    acc = word(arch, nr, args, k);
                    pc + 1
                }
                0x54 => {
                    acc &= k;
                    pc + 1
                }
                0x05 => pc + 1 + k as usize,
                0x15 => jump(acc == k),
                0x25 => jump(acc > k),
                0x35 => jump(acc >= k),
                0x45 => jump(acc & k != 0),
                0x06 => return k,
                other => panic!("opcode {other:#x} at {pc}"),
            };
        }
    }

    /// What the kernel answers when several programs are attached: the
    /// action of highest precedence (seccomp(2)).
    fn precedence(action: u32) -> u32 {
        match action & 0xffff_0000 {
            0x8000_0000 => 0, // KILL_PROCESS
            0x0000_0000 => 1, // KILL_THREAD
            0x0003_0000 => 2, // TRAP
            0x0005_0000 => 3, // ERRNO
            0x7fff_0000 => 9, // ALLOW
            other => panic!("action {other:#x}"),
        }
    }

    fn ours(filters: Filters) -> Vec<(u16, u8, u8, u32)> {
        program(filters)
            .unwrap()
            .insns()
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect()
    }

    #[test]
    fn the_program_decides_as_seccompiler_did_for_every_syscall() {
        const I386: u32 = 0x4000_0003;
        let protocols = [0, 6, IPPROTO_MPTCP, IPPROTO_MPTCP | 1 << 32, 1 << 32];
        let flags = [0, MSG_FASTOPEN, MSG_FASTOPEN | 0x40, 1 << 32, 0x40];
        let mut x32_numbers: Vec<u32> = (0..1024).map(|nr| nr | X32_SYSCALL_BIT).collect();
        x32_numbers.extend([u32::MAX, 0x8000_0000 | 41]);
        for i in 1..8 {
            let filters = Filters::from_index(i);
            let ours = ours(filters);
            let reference: Vec<Vec<(u16, u8, u8, u32)>> = reference(filters)
                .iter()
                .map(|p| p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect())
                .collect();
            for arch in [AUDIT_ARCH, I386] {
                for &nr in (0..1024).collect::<Vec<_>>().iter().chain(&x32_numbers) {
                    for protocol in protocols {
                        for flag in flags {
                            let args = [3, 1, protocol, flag, 0, 0];
                            let expected = reference
                                .iter()
                                .map(|p| run(p, arch, nr, &args))
                                .min_by_key(|&a| precedence(a))
                                .unwrap();
                            let got = run(&ours, arch, nr, &args);
                            assert_eq!(
                                got, expected,
                                "{filters:?} arch {arch:#x} nr {nr:#x} args {args:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn one_short_program_and_none_when_nothing_is_filtered() {
        assert!(program(Filters::from_index(0)).is_none());
        for i in 1..8 {
            let len = program(Filters::from_index(i)).unwrap().insns().len();
            assert!(len <= MAX_LEN, "{len}");
        }
        // The baseline profile (TCP restricted, connect unrestricted): what
        // most sandboxed containers run under.
        let baseline = Filters {
            fastopen: false,
            ..ALL
        };
        assert!(program(baseline).unwrap().insns().len() < 25);
        assert!(
            Filters {
                mptcp: false,
                fastopen: false,
                io_uring: true
            }
            .any()
        );
    }

    #[test]
    fn io_uring_filter_answers_enosys_for_native_and_x32_numbers() {
        // No x32 kernel here (CONFIG_X86_X32_ABI is off on the test machine),
        // so read the program instead: every number must be compared, and
        // the match must return ERRNO(ENOSYS).
        const RET_ERRNO_ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;
        let program = ours(Filters {
            mptcp: false,
            fastopen: false,
            ..ALL
        });
        let compared: Vec<u32> = program
            .iter()
            .filter(|insn| insn.0 == JEQ_K)
            .map(|insn| insn.3)
            .collect();
        let mut expected = vec![425, 426, 427];
        if cfg!(target_arch = "x86_64") {
            expected.extend([0x4000_01a9, 0x4000_01aa, 0x4000_01ab]);
        }
        for nr in expected {
            assert!(compared.contains(&nr), "syscall {nr:#x} not filtered");
            assert_eq!(run(&program, AUDIT_ARCH, nr, &[0; 6]), RET_ERRNO_ENOSYS);
        }
        assert!(
            program
                .iter()
                .any(|insn| insn.0 == RET_K && insn.3 == RET_ERRNO_ENOSYS),
            "no ERRNO(ENOSYS) return"
        );
    }
}
