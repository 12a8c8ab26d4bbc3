//! io_uring under TCP rules, on the real kernel (Linux 6.18, ABI 7, io_uring
//! enabled): io_uring's operations never pass through seccomp, so
//! `IORING_OP_SOCKET` makes MPTCP sockets (which Landlock's TCP rules miss)
//! past the socket() filter, and `IORING_OP_SENDMSG` sends with
//! `MSG_FASTOPEN` past the send filter. The launcher refuses io_uring with
//! ENOSYS whenever TCP is restricted, unless the policy sets
//! `allow_io_uring`, which these tests show is a real bypass.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message
#![allow(unsafe_code)] // raw io_uring_setup and a pre_exec dup2: each block says why it is sound

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::*;
use rstest::rstest;

/// The part of the status line that says io_uring is allowed.
const BYPASS_NOTE: &str = "allow_io_uring is set, so TCP rules can be bypassed through io_uring";

/// The premise of every test here: io_uring works on this machine outside
/// any sandbox. Checked, not assumed: with `kernel.io_uring_disabled` set the
/// kernel itself refuses rings and the tests below would prove nothing.
fn assert_io_uring_available() {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "0".to_owned());
    assert_eq!(
        disabled, "0",
        "kernel.io_uring_disabled is {disabled}: set it to 0 (sysctl -w kernel.io_uring_disabled=0) to run the io_uring tests"
    );
    let mut outside = std::process::Command::new(probe());
    outside.arg("uring-setup");
    run(&mut outside)
        .assert_code(0)
        .assert_stdout("ok io_uring ring created");
}

fn bind_only(ports: &[u16]) -> serde_json::Value {
    json!({"v": 1, "net": {"bind": ports}})
}

#[rstest]
#[case::bind(json!({"v": 1, "net": {"bind": [8080]}}))]
#[case::connect(json!({"v": 1, "net": {"connect": [443]}}))]
#[case::strict_profile(json!({"v": 1, "fs": {"rx": ["/"], "rw": ["/tmp"]}, "net": {"bind": [8080], "connect": []}, "scope": {"signal": true, "abstract_unix_socket": true}}))]
fn io_uring_setup_fails_with_enosys_when_tcp_is_restricted(#[case] policy: serde_json::Value) {
    assert_io_uring_available();
    let refused = exec(&policy, &[probe_str(), "uring-setup"]);
    assert_eq!(refused.probe_errno(), Some(ENOSYS), "{refused:#?}");
    refused
        .assert_stdout("io_uring_setup")
        .assert_stderr(FULLY_ENFORCED);
}

#[test]
fn an_mptcp_socket_from_io_uring_cannot_bind_an_undeclared_port() {
    // The attack: IORING_OP_SOCKET(IPPROTO_MPTCP) gets past the socket()
    // filter, and bind() on an MPTCP socket gets past Landlock. No ring, no
    // socket, no bind.
    assert_io_uring_available();
    let (declared, undeclared) = (free_port(), free_port());
    let attack = exec(
        &bind_only(&[declared]),
        &[
            probe_str(),
            "uring-mptcp-bind",
            &format!("127.0.0.1:{undeclared}"),
        ],
    );
    assert_eq!(attack.probe_errno(), Some(ENOSYS), "{attack:#?}");
    attack.assert_stdout("io_uring_setup");
    assert!(!attack.stdout.contains("bound"), "{attack:#?}");
}

#[test]
fn allow_io_uring_lets_mptcp_sockets_from_io_uring_bind_undeclared_ports() {
    // What the switch costs, and the evidence that the filter matters: with
    // io_uring allowed, the same attack binds a port the policy never listed
    // while a plain TCP bind to it is still refused by Landlock.
    assert_io_uring_available();
    let (declared, undeclared) = (free_port(), free_port());
    let policy = json!({"v": 1, "net": {"bind": [declared]}, "allow_io_uring": true});
    let bypass = exec(
        &policy,
        &[
            probe_str(),
            "uring-mptcp-bind",
            &format!("127.0.0.1:{undeclared}"),
        ],
    );
    bypass
        .assert_code(0)
        .assert_stdout(&format!("ok io_uring mptcp socket bound port={undeclared}"))
        .assert_stderr("landgate: PartiallyEnforced (abi ")
        .assert_stderr(BYPASS_NOTE);
    let plain = exec(
        &policy,
        &[probe_str(), "bind", &format!("127.0.0.1:{undeclared}")],
    );
    assert_eq!(plain.probe_errno(), Some(EACCES), "{plain:#?}");
}

#[test]
fn fast_open_through_io_uring_reaches_an_undeclared_port_only_with_allow_io_uring() {
    assert_io_uring_available();
    let bits: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        bits & 1 == 1,
        "net.ipv4.tcp_fastopen is {bits}: set its client bit (sysctl -w net.ipv4.tcp_fastopen=1) to run the TCP Fast Open tests"
    );
    let (listener, addr) = outside_listener();
    let restricted = json!({"v": 1, "net": {"connect": [443]}});
    let refused = exec(&restricted, &[probe_str(), "uring-fastopen", &addr]);
    assert_eq!(refused.probe_errno(), Some(ENOSYS), "{refused:#?}");
    assert!(
        !accepts_within(&listener, Duration::from_millis(300)),
        "the listener on the undeclared port was reached through io_uring"
    );

    let allowed = json!({"v": 1, "net": {"connect": [443]}, "allow_io_uring": true});
    exec(&allowed, &[probe_str(), "uring-fastopen", &addr])
        .assert_code(0)
        .assert_stdout("ok sent with MSG_FASTOPEN via io_uring")
        .assert_stderr(BYPASS_NOTE);
    assert!(
        accepts_within(&listener, Duration::from_secs(5)),
        "IORING_OP_SENDMSG(MSG_FASTOPEN) did not connect: the bypass allow_io_uring documents is gone; update the texts that describe it"
    );
}

#[rstest]
#[case::nothing(json!({"v": 1}))]
#[case::fs_only(json!({"v": 1, "fs": {"rx": ["/"], "rw": []}}))]
#[case::scopes_only(json!({"v": 1, "scope": {"signal": true, "abstract_unix_socket": true}}))]
fn io_uring_works_when_tcp_is_unrestricted(#[case] policy: serde_json::Value) {
    // Without TCP rules there is nothing for io_uring to bypass.
    assert_io_uring_available();
    exec(&policy, &[probe_str(), "uring-setup"])
        .assert_code(0)
        .assert_stdout("ok io_uring ring created")
        .assert_stderr(FULLY_ENFORCED);
    exec(&policy, &[probe_str(), "uring-mptcp-bind", "127.0.0.1:0"])
        .assert_code(0)
        .assert_stdout("ok io_uring mptcp socket bound port=");
}

/// The fd the inherited ring gets in the sandboxed command.
const INHERITED_FD: i32 = 3;

/// `landgate exec` under `policy` with a ring created here, outside the
/// sandbox, left open across exec as fd 3: the way a parent would hand one
/// down (the kernel creates rings O_CLOEXEC, and refuses to pass them over
/// UNIX sockets since Linux 6.7).
fn exec_with_inherited_ring(policy: &serde_json::Value) -> Run {
    let mut params = [0u32; 30]; // struct io_uring_params, 120 bytes
    // SAFETY: io_uring_setup writes at most sizeof(struct io_uring_params)
    // into `params`, which is that size.
    let ring = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
    assert!(
        ring >= 0,
        "io_uring_setup: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    let ring = unsafe { OwnedFd::from_raw_fd(ring as i32) };
    let raw = ring.as_raw_fd();
    let mut cmd = landgate();
    cmd.args(["exec", "--", probe_str(), "uring-inherited", "3"])
        .env("LANDGATE_POLICY", policy.to_string());
    // SAFETY: dup2 and fcntl are async-signal-safe; they run in the forked
    // child before exec and give the ring a fixed number without O_CLOEXEC
    // (dup2 keeps the flag when the ring already is fd 3, hence fcntl).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, INHERITED_FD) < 0 || libc::fcntl(INHERITED_FD, libc::F_SETFD, 0) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run(&mut cmd);
    drop(ring);
    out
}

#[test]
fn an_inherited_ring_cannot_be_entered_or_registered_when_tcp_is_restricted() {
    assert_io_uring_available();
    let refused = exec_with_inherited_ring(&bind_only(&[8080]));
    assert_eq!(refused.probe_errno(), Some(ENOSYS), "{refused:#?}");
    refused.assert_stdout("io_uring_enter on inherited fd 3");
    // Without TCP rules the same ring is usable: the fd really is inherited.
    exec_with_inherited_ring(&json!({"v": 1, "fs": {"rx": ["/"], "rw": []}}))
        .assert_code(0)
        .assert_stdout("ok io_uring_enter and io_uring_register on inherited fd 3");
}

#[test]
fn allow_io_uring_runs_under_required_and_check_says_what_it_costs() {
    // The policy author chose io_uring over the TCP rules' guarantee:
    // `required` runs it, but neither the status line nor `check` claims
    // full enforcement.
    assert_io_uring_available();
    let policy = json!({"v": 1, "enforcement": "required", "net": {"bind": [8080], "connect": [443]}, "allow_io_uring": true});
    exec(&policy, &[probe_str(), "uring-setup"])
        .assert_code(0)
        .assert_stdout("ok io_uring ring created")
        .assert_stderr("landgate: PartiallyEnforced (abi ")
        .assert_stderr(BYPASS_NOTE);
    run(landgate()
        .arg("check")
        .env("LANDGATE_POLICY", policy.to_string()))
    .assert_code(0)
    .assert_stdout("io_uring: allowed by allow_io_uring")
    .assert_stdout("status: PartiallyEnforced (abi ")
    .assert_stdout(BYPASS_NOTE);
    run(landgate()
        .arg("check")
        .env("LANDGATE_POLICY", bind_only(&[8080]).to_string()))
    .assert_code(0)
    .assert_stdout(
        "io_uring: io_uring_setup, io_uring_enter and io_uring_register fail with ENOSYS",
    )
    .assert_stdout("status: FullyEnforced (abi ");
}
