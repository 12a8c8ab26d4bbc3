//! Filesystem rules, inheritance and exec semantics, on the real kernel.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

mod common;

use std::path::Path;

use common::*;

struct Dirs {
    _root: tempfile::TempDir,
    rx: String,
    rw: String,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let rx = root.path().join("rx");
    let rw = root.path().join("rw");
    std::fs::create_dir_all(&rx).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(rx.join("existing"), "x").unwrap();
    Dirs {
        rx: rx.to_str().unwrap().to_owned(),
        rw: rw.to_str().unwrap().to_owned(),
        _root: root,
    }
}

fn rx_root_rw(rw: &str) -> serde_json::Value {
    json!({"v": 1, "fs": {"rx": ["/"], "rw": [rw]}})
}

#[test]
fn write_under_rw_succeeds_and_under_rx_only_gets_eacces() {
    let d = dirs();
    let policy = rx_root_rw(&d.rw);
    exec(&policy, &[probe_str(), "write", &format!("{}/new", d.rw)])
        .assert_code(0)
        .assert_stdout("ok written")
        .assert_stderr(FULLY_ENFORCED);
    assert!(Path::new(&d.rw).join("new").exists());
    for target in [format!("{}/new", d.rx), format!("{}/existing", d.rx)] {
        let denied = exec(&policy, &[probe_str(), "write", &target]);
        assert_eq!(denied.probe_errno(), Some(EACCES), "{target}: {denied:#?}");
    }
    assert_eq!(
        std::fs::read_to_string(format!("{}/existing", d.rx)).unwrap(),
        "x"
    );
}

#[test]
fn read_outside_every_rule_gets_eacces() {
    let d = dirs();
    let probe_dir = probe().parent().unwrap().to_str().unwrap();
    let policy = json!({"v": 1, "fs": {"rx": [probe_dir, d.rx], "rw": []}});
    exec(
        &policy,
        &[probe_str(), "read", &format!("{}/existing", d.rx)],
    )
    .assert_code(0)
    .assert_stdout("ok read");
    let denied = exec(&policy, &[probe_str(), "read", "/etc/passwd"]);
    assert_eq!(denied.probe_errno(), Some(EACCES), "{denied:#?}");
}

#[test]
fn restrictions_survive_into_children_and_cannot_be_undone() {
    let d = dirs();
    let policy = rx_root_rw(&d.rw);
    let landgate = landgate_bin().to_str().unwrap();
    // A grandchild (sh → sh → probe) is still confined...
    let script = format!(
        "sh -c '{probe} write {rx}/grandchild'; \
         echo active=$LANDGATE_ACTIVE; \
         LANDGATE_POLICY='{{\"v\":1,\"fs\":{{\"rx\":[\"/\"],\"rw\":[\"/\"]}}}}' {landgate} exec -- {probe} write {rx}/widened",
        probe = probe_str(),
        rx = d.rx,
    );
    let out = exec(&policy, &["sh", "-c", &script]);
    // ...and a nested, more permissive policy cannot widen the domain.
    let errnos: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("errno="))
        .collect();
    assert_eq!(errnos.len(), 2, "{out:#?}");
    assert!(
        errnos
            .iter()
            .all(|l| l.starts_with(&format!("errno={EACCES} "))),
        "{out:#?}"
    );
    out.assert_stdout("active=1");
    assert!(!Path::new(&d.rx).join("grandchild").exists());
    assert!(!Path::new(&d.rx).join("widened").exists());
}

#[test]
fn missing_paths_are_skipped_with_a_warning() {
    let d = dirs();
    let policy = json!({"v": 1, "fs": {"rx": ["/"], "rw": [d.rw, "/nonexistent/landgate-data"]}});
    exec(&policy, &[probe_str(), "write", &format!("{}/f", d.rw)])
        .assert_code(0)
        .assert_stdout("ok written")
        .assert_stderr(
            "warning: fs.rw path /nonexistent/landgate-data does not exist; its rule is skipped",
        );
}

#[test]
fn a_path_that_exists_but_cannot_be_opened_is_an_error_naming_it() {
    let d = dirs();
    // A symlink loop exists (lstat works) but open() fails with ELOOP, even as root.
    let looped = format!("{}/loop", d.rw);
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let marker = format!("{}/ran", d.rw);
    let policy = json!({"v": 1, "fs": {"rx": ["/"], "rw": [looped]}});
    exec(&policy, &["sh", "-c", &format!("echo > {marker}")])
        .assert_code(123)
        .assert_stderr(&format!("cannot open fs.rw path {looped}"));
    assert!(!Path::new(&marker).exists(), "the command must not run");
}

#[test]
fn exec_replaces_the_launcher_keeping_pid_exit_code_and_signals() {
    let policy = rx_root_rw("/tmp");
    let out = exec(&policy, &["sh", "-c", "echo pid=$$; exit 7"]);
    out.assert_code(7);
    assert_eq!(out.stdout.trim(), format!("pid={}", out.pid), "{out:#?}");
    let killed = exec(&policy, &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(killed.signal, Some(15), "{killed:#?}");
}

#[test]
fn required_policy_fully_enforced_here_runs_the_command() {
    let d = dirs();
    let policy = json!({
        "v": 1, "enforcement": "required",
        "fs": {"rx": ["/"], "rw": [d.rw]},
        "net": {"bind": [8080], "connect": [443]},
        "scope": {"signal": true, "abstract_unix_socket": true}
    });
    exec(&policy, &["true"])
        .assert_code(0)
        .assert_stderr(FULLY_ENFORCED);
}

#[test]
fn rw_rules_on_device_files_work() {
    // The strict profile grants /dev/null-class devices: rules on
    // non-directories keep only the file rights (including device ioctl).
    let policy = json!({"v": 1, "fs": {"rx": ["/"], "rw": ["/dev/null"]}});
    exec(
        &policy,
        &["sh", "-c", "echo discarded > /dev/null && echo ok"],
    )
    .assert_code(0)
    .assert_stdout("ok")
    .assert_stderr(FULLY_ENFORCED);
}

#[test]
fn signal_scope_blocks_signals_to_processes_outside_the_sandbox() {
    let mut outside = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = outside.id();
    let kill = format!("kill -0 {pid} && echo reached || echo blocked");
    let scoped = json!({"v": 1, "scope": {"signal": true}});
    exec(&scoped, &["sh", "-c", &kill]).assert_stdout("blocked");
    let unscoped = json!({"v": 1, "fs": {"rx": ["/"]}});
    exec(&unscoped, &["sh", "-c", &kill]).assert_stdout("reached");
    outside.kill().unwrap();
    outside.wait().unwrap();
}
