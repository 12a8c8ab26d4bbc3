//! TCP rules and the MPTCP filter, on the real kernel.

mod common;

use std::net::TcpListener;

use common::*;

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
