//! TCP rules and the MPTCP and TCP Fast Open filters, on the real kernel.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::*;
use rstest::rstest;

fn bind_only(ports: &[u16]) -> serde_json::Value {
    json!({"v": 1, "net": {"bind": ports}})
}

#[test]
fn bind_to_a_declared_port_succeeds_and_to_an_undeclared_one_gets_eacces() {
    let (declared, undeclared) = (free_port(), free_port());
    let policy = bind_only(&[declared]);
    exec(
        &policy,
        &[probe_str(), "bind", &format!("127.0.0.1:{declared}")],
    )
    .assert_code(0)
    .assert_stdout(&format!("ok bound port={declared}"))
    .assert_stderr(FULLY_ENFORCED);
    // This kernel (6.18, ABI 7) answers EACCES, not the EPERM some write-ups claim.
    let denied = exec(
        &policy,
        &[probe_str(), "bind", &format!("127.0.0.1:{undeclared}")],
    );
    assert_eq!(denied.probe_errno(), Some(EACCES), "{denied:#?}");
}

#[test]
fn bind_to_port_zero_is_allowed_unless_bind_ephemeral_is_false() {
    exec(&bind_only(&[8080]), &[probe_str(), "bind", "127.0.0.1:0"])
        .assert_code(0)
        .assert_stdout("ok bound port=");
    let strict = json!({"v": 1, "net": {"bind": [8080], "bind_ephemeral": false}});
    let denied = exec(&strict, &[probe_str(), "bind", "127.0.0.1:0"]);
    assert_eq!(denied.probe_errno(), Some(EACCES), "{denied:#?}");
}

#[test]
fn connect_is_limited_by_a_list_and_unrestricted_when_null() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let port = server.local_addr().unwrap().port();

    let other = json!({"v": 1, "net": {"connect": [free_port()]}});
    let denied = exec(&other, &[probe_str(), "connect", &addr]);
    assert_eq!(denied.probe_errno(), Some(EACCES), "{denied:#?}");

    let listed = json!({"v": 1, "net": {"connect": [port]}});
    exec(&listed, &[probe_str(), "connect", &addr]).assert_stdout("ok connected");

    let null = json!({"v": 1, "net": {"bind": [], "connect": null}});
    exec(&null, &[probe_str(), "connect", &addr]).assert_stdout("ok connected");
}

#[test]
fn go_listens_with_mptcp_by_default_outside_the_sandbox() {
    // The premise of the MPTCP filter: Go's net.Listen asks for MPTCP, which
    // Landlock's TCP rules do not cover.
    let mut plain = std::process::Command::new(probe());
    plain.args(["listen", "127.0.0.1:0"]);
    run(&mut plain)
        .assert_code(0)
        .assert_stdout("listener=mptcp");
}

#[test]
fn go_net_listen_on_an_undeclared_port_is_refused_and_on_a_declared_one_serves() {
    let (declared, undeclared) = (free_port(), free_port());
    let policy = bind_only(&[declared]);
    let refused = exec(
        &policy,
        &[probe_str(), "listen", &format!("127.0.0.1:{undeclared}")],
    );
    assert_eq!(refused.probe_errno(), Some(EACCES), "{refused:#?}");
    // Served over plain TCP: the filter made Go fall back from MPTCP.
    exec(
        &policy,
        &[probe_str(), "listen", &format!("127.0.0.1:{declared}")],
    )
    .assert_code(0)
    .assert_stdout("ok served \"hello\\n\" listener=tcp");
}

#[test]
fn an_explicit_mptcp_socket_fails_with_eprotonosupport() {
    let denied = exec(&bind_only(&[8080]), &[probe_str(), "mptcp-socket"]);
    assert_eq!(denied.probe_errno(), Some(EPROTONOSUPPORT), "{denied:#?}");
    let connect_only = json!({"v": 1, "net": {"connect": [443]}});
    let denied = exec(&connect_only, &[probe_str(), "mptcp-socket"]);
    assert_eq!(denied.probe_errno(), Some(EPROTONOSUPPORT), "{denied:#?}");
}

#[test]
fn mptcp_is_left_alone_when_tcp_is_unrestricted() {
    // Nothing else is filtered: without TCP rules there is no hole to close.
    let fs_only = json!({"v": 1, "fs": {"rx": ["/"], "rw": []}});
    exec(&fs_only, &[probe_str(), "mptcp-socket"])
        .assert_code(0)
        .assert_stdout("ok mptcp socket created");
}

/// The premise of the TCP Fast Open filter: the client bit of
/// net.ipv4.tcp_fastopen is on (1 here, the kernel default), so a send with
/// MSG_FASTOPEN connects. Checked, not assumed: with the bit off the kernel
/// itself answers EOPNOTSUPP and the tests below would prove nothing.
fn assert_fast_open_client_enabled() {
    let value = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen").unwrap();
    let bits: u32 = value.trim().parse().unwrap();
    assert!(
        bits & 1 == 1,
        "net.ipv4.tcp_fastopen is {bits}: set its client bit (sysctl -w net.ipv4.tcp_fastopen=1) to run the TCP Fast Open tests"
    );
}

#[rstest]
#[case::sendto("sendto")]
#[case::sendmsg("sendmsg")]
#[case::sendmmsg("sendmmsg")]
fn tcp_fast_open_to_an_undeclared_port_fails_with_eopnotsupp_and_connects_nothing(
    #[case] call: &str,
) {
    assert_fast_open_client_enabled();
    let (undeclared, undeclared_addr) = outside_listener();
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed_port = allowed.local_addr().unwrap().port();
    let policy = json!({"v": 1, "net": {"connect": [443, allowed_port]}});

    // Landlock alone would let this through: the MSG_FASTOPEN path connects
    // without its connect hook. The seccomp filter refuses the send.
    let denied = exec(&policy, &[probe_str(), "fastopen", &undeclared_addr, call]);
    assert_eq!(denied.probe_errno(), Some(EOPNOTSUPP), "{denied:#?}");
    assert!(
        !accepts_within(&undeclared, Duration::from_millis(300)),
        "the listener on the undeclared port was reached through {call}(MSG_FASTOPEN)"
    );
    // The plain connect() rule still applies to the same address...
    let refused = exec(&policy, &[probe_str(), "connect", &undeclared_addr]);
    assert_eq!(refused.probe_errno(), Some(EACCES), "{refused:#?}");
    // ...and a declared port is still reachable.
    exec(
        &policy,
        &[
            probe_str(),
            "connect",
            &allowed.local_addr().unwrap().to_string(),
        ],
    )
    .assert_code(0)
    .assert_stdout("ok connected");
}

#[rstest]
#[case::sendto("sendto")]
#[case::sendmmsg("sendmmsg")]
fn tcp_fast_open_is_left_alone_when_connect_is_unrestricted(#[case] call: &str) {
    assert_fast_open_client_enabled();
    let (listener, addr) = outside_listener();
    // Bind is restricted, so the MPTCP filter is installed, but connect is
    // null: no connect rule to bypass, so MSG_FASTOPEN is not filtered.
    let policy = json!({"v": 1, "net": {"bind": [8080], "connect": null}});
    exec(&policy, &[probe_str(), "fastopen", &addr, call])
        .assert_code(0)
        .assert_stdout(&format!("ok sent with MSG_FASTOPEN via {call}"));
    assert!(
        accepts_within(&listener, Duration::from_secs(5)),
        "MSG_FASTOPEN did not connect although connect is unrestricted"
    );
}

#[test]
fn listen_without_bind_gets_an_ephemeral_port_despite_bind_rules() {
    // Documents a Landlock limit (Linux 6.18, ABI 7), listed by `landgate
    // check` and `features` as not restricted: listen() on a socket that was
    // never bound makes the kernel pick an ephemeral port without the LSM
    // bind hook, so bind rules cannot stop it, not even with bind_ephemeral
    // false (which does stop bind(0)). If this test starts failing, the
    // kernel began covering it: update the "not restricted" texts.
    for policy in [
        json!({"v": 1, "net": {"bind": [8080]}}),
        json!({"v": 1, "net": {"bind": [8080], "bind_ephemeral": false}}),
    ] {
        let out = exec(&policy, &[probe_str(), "listen-unbound"]);
        out.assert_code(0)
            .assert_stdout("ok listening port=")
            .assert_stderr(FULLY_ENFORCED);
    }
    let strict = json!({"v": 1, "net": {"bind": [8080], "bind_ephemeral": false}});
    let denied = exec(&strict, &[probe_str(), "bind", "127.0.0.1:0"]);
    assert_eq!(denied.probe_errno(), Some(EACCES), "{denied:#?}");
}
