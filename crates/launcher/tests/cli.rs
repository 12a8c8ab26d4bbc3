//! The command line: required mode, bad policies, exit codes, check,
//! features and install, through the built binary.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use rstest::rstest;

const TCP_AND_SCOPES: &str = r#"{"v":1,"enforcement":"required","fs":{"rx":["/"],"rw":["/tmp"]},"net":{"bind":[8080]},"scope":{"signal":true,"abstract_unix_socket":true}}"#;

fn marker() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran").to_str().unwrap().to_owned();
    (dir, marker)
}

#[rstest]
#[case::abi_3(
    "3",
    "only reaches PartiallyEnforced (abi 3: device ioctl rules need abi 5; TCP rules need abi 4; signal and abstract UNIX socket scopes need abi 6)",
    "ABI >= 6 (Linux >= 6.12)"
)]
#[case::no_landlock(
    "0",
    "only reaches NotEnforced (Landlock is not available",
    "best-effort"
)]
fn required_refuses_before_running_anything(
    #[case] max_abi: &str,
    #[case] reached: &str,
    #[case] fix: &str,
) {
    let (_dir, marker) = marker();
    let mut cmd = landgate();
    cmd.args(["exec", "--", "sh", "-c", &format!("echo > {marker}")])
        .env("LANDGATE_POLICY", TCP_AND_SCOPES)
        .env("LANDGATE_TEST_MAX_ABI", max_abi);
    run(&mut cmd)
        .assert_code(122)
        .assert_stderr("policy says `enforcement: required`")
        .assert_stderr(reached)
        .assert_stderr(fix);
    assert!(!Path::new(&marker).exists(), "the command must not run");
}

#[test]
fn best_effort_on_an_old_abi_reports_partial_and_runs() {
    let policy = TCP_AND_SCOPES.replace("required", "best-effort");
    let mut cmd = landgate();
    cmd.args(["exec", "--", "true"])
        .env("LANDGATE_POLICY", policy)
        .env("LANDGATE_TEST_MAX_ABI", "3")
        .env("LANDGATE_QUIET", "1");
    run(&mut cmd).assert_code(0).assert_stderr(
        "landgate: PartiallyEnforced (abi 3: device ioctl rules need abi 5; TCP rules need abi 4;",
    );
}

#[rstest]
#[case::not_json("{not json", "invalid landgate policy at `(whole policy)`")]
#[case::unknown_field(
    r#"{"v":1,"net":{"bnid":[80]}}"#,
    "at `net.bnid`: unknown field `bnid`"
)]
#[case::wrong_version(r#"{"v":2}"#, "at `v`: unsupported policy version 2")]
#[case::port_too_big(
    r#"{"v":1,"net":{"bind":[80,70000]}}"#,
    "at `net.bind[1]`: port 70000 is out of range"
)]
#[case::negative_port(
    r#"{"v":1,"net":{"connect":[-1]}}"#,
    "at `net.connect[0]`: port -1 is out of range"
)]
#[case::relative_path(
    r#"{"v":1,"fs":{"rw":["data"]}}"#,
    "at `fs.rw[0]`: path \"data\" is relative"
)]
#[case::bad_enforcement(
    r#"{"v":1,"enforcement":"strict"}"#,
    "at `enforcement`: unknown variant `strict`"
)]
fn malformed_policies_exit_121_with_the_field_named(#[case] policy: &str, #[case] message: &str) {
    let (_dir, marker) = marker();
    let mut cmd = landgate();
    cmd.args(["exec", "--", "sh", "-c", &format!("echo > {marker}")])
        .env("LANDGATE_POLICY", policy);
    run(&mut cmd)
        .assert_code(121)
        .assert_stderr("landgate: error: ")
        .assert_stderr(message);
    assert!(!Path::new(&marker).exists(), "the command must not run");
}

#[test]
fn missing_policy_env_and_file_exit_121() {
    run(landgate().args(["exec", "--", "true"]))
        .assert_code(121)
        .assert_stderr("LANDGATE_POLICY is not set");
    run(landgate().args(["exec", "--policy-env", "MY_POLICY", "--", "true"]))
        .assert_code(121)
        .assert_stderr("MY_POLICY is not set");
    run(landgate().args(["exec", "--policy-file", "/nonexistent/p.json", "--", "true"]))
        .assert_code(121)
        .assert_stderr("cannot read the policy file /nonexistent/p.json");
}

#[test]
fn policy_file_and_named_env_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.json");
    std::fs::write(&file, r#"{"v":1,"fs":{"rx":["/"]}}"#).unwrap();
    run(landgate()
        .arg("exec")
        .arg("--policy-file")
        .arg(&file)
        .args(["--", "true"]))
    .assert_code(0)
    .assert_stderr(FULLY_ENFORCED);
    run(landgate()
        .args(["exec", "--policy-env=MY_POLICY", "--", "true"])
        .env("MY_POLICY", r#"{"v":1,"fs":{"rx":["/"]}}"#))
    .assert_code(0);
}

#[test]
fn launcher_failures_use_codes_distinct_from_the_command() {
    let policy = r#"{"v":1,"fs":{"rx":["/"],"rw":["/tmp"]}}"#;
    run(landgate().args(["exec", "--bogus", "--", "true"]))
        .assert_code(125)
        .assert_stderr("unknown option --bogus");
    run(landgate()
        .args(["exec", "--", "landgate-no-such-command"])
        .env("LANDGATE_POLICY", policy))
    .assert_code(127)
    .assert_stderr("landgate-no-such-command: command not found on PATH");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    run(landgate()
        .arg("exec")
        .arg("--")
        .arg(&script)
        .env("LANDGATE_POLICY", policy))
    .assert_code(126)
    .assert_stderr("cannot execute");
}

#[test]
fn quiet_silences_only_the_success_line() {
    let policy = r#"{"v":1,"fs":{"rx":["/"]}}"#;
    let out = run(landgate()
        .args(["exec", "--", "true"])
        .env("LANDGATE_POLICY", policy)
        .env("LANDGATE_QUIET", "1"));
    out.assert_code(0);
    assert_eq!(out.stderr, "", "{out:#?}");
    let quiet_field = r#"{"v":1,"fs":{"rx":["/"],"rw":["/nonexistent/x"]},"quiet":true}"#;
    let out = run(landgate()
        .args(["exec", "--", "true"])
        .env("LANDGATE_POLICY", quiet_field));
    out.assert_code(0)
        .assert_stderr("warning: fs.rw path /nonexistent/x");
    assert!(!out.stderr.contains("FullyEnforced"), "{out:#?}");
}

#[test]
fn check_and_dry_run_print_the_ruleset_and_apply_nothing() {
    let (_dir, marker) = marker();
    let policy = r#"{"v":1,"fs":{"rx":["/"],"rw":["/tmp"]},"net":{"bind":[8080]}}"#;
    let out = run(landgate()
        .args([
            "exec",
            "--dry-run",
            "--",
            "sh",
            "-c",
            &format!("echo > {marker}"),
        ])
        .env("LANDGATE_POLICY", policy));
    out.assert_code(0)
        .assert_stdout("fs.rw  /tmp:")
        .assert_stdout("tcp bind: only 0 (ephemeral), 8080")
        .assert_stdout("mptcp: socket(IPPROTO_MPTCP) fails with EPROTONOSUPPORT")
        .assert_stdout("tcp fast open: allowed (TCP connect is unrestricted)")
        .assert_stdout(
            "not restricted: UDP, SCTP and raw sockets; listen() on a kernel-chosen ephemeral port",
        )
        .assert_stdout("status: FullyEnforced (abi ")
        .assert_stdout("command: /");
    assert!(
        !Path::new(&marker).exists(),
        "dry-run must not run the command"
    );

    run(landgate().arg("check").env("LANDGATE_POLICY", policy))
        .assert_code(0)
        .assert_stdout("tcp connect: unrestricted");
    run(landgate()
        .arg("check")
        .env("LANDGATE_POLICY", r#"{"v":1,"net":{"connect":[443]}}"#))
    .assert_code(0)
    .assert_stdout("tcp connect: only 443")
    .assert_stdout(
        "tcp fast open: sendto/sendmsg/sendmmsg with MSG_FASTOPEN fail with EOPNOTSUPP (seccomp)",
    );
    run(landgate()
        .arg("check")
        .env("LANDGATE_POLICY", TCP_AND_SCOPES)
        .env("LANDGATE_TEST_MAX_ABI", "3"))
    .assert_code(122)
    .assert_stdout("tcp bind: only 0 (ephemeral), 8080 (not enforced: needs abi 4)")
    .assert_stdout("status: PartiallyEnforced (abi 3:");
}

#[test]
fn features_reports_this_kernel_in_text_and_json() {
    let text = run(landgate().arg("features"));
    text.assert_code(0)
        .assert_stdout("landlock: available, ABI ")
        .assert_stdout(
            "seccomp filter (closes the MPTCP, TCP Fast Open and io_uring holes in TCP rules): yes",
        )
        .assert_stdout("listen() on a kernel-chosen ephemeral port")
        .assert_stdout("bind_tcp")
        .assert_stdout("signal");
    let json = run(landgate().args(["features", "--json"]));
    json.assert_code(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["landlock"]["status"], "available");
    // This machine's kernel (6.18) offers ABI 7; the tests rely on it.
    assert!(value["landlock"]["abi"].as_u64().unwrap() >= 7, "{value}");
    let supported = |group: &str, name: &str| {
        value[group]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == name && f["supported"] == true)
    };
    assert!(supported("net", "bind_tcp"));
    assert!(supported("scope", "signal"));
    assert!(supported("fs", "ioctl_dev"));
    assert_eq!(value["seccomp_filter"], true);
    let not_covered = value["not_covered"].to_string();
    assert!(not_covered.contains("MSG_FASTOPEN"), "{not_covered}");
    assert!(
        not_covered.contains("listen() on a kernel-chosen ephemeral port"),
        "{not_covered}"
    );
}

#[test]
fn install_copies_the_launcher_and_creates_wrappers_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("landgate");
    for _ in 0..2 {
        run(landgate()
            .arg("install")
            .arg(&target)
            .args(["--wrappers", "sh,python3"]))
        .assert_code(0)
        .assert_stdout("installed");
    }
    let launcher = target.join("landgate");
    let meta = std::fs::metadata(&launcher).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o555);
    assert_eq!(meta.len(), std::fs::metadata(landgate_bin()).unwrap().len());
    for name in ["sh", "python3"] {
        assert_eq!(
            std::fs::read_link(target.join("bin").join(name)).unwrap(),
            Path::new("../landgate")
        );
    }
    run(std::process::Command::new(&launcher).arg("--version"))
        .assert_code(0)
        .assert_stdout("landgate ");
    // Default wrapper list.
    let defaults = dir.path().join("defaults");
    run(landgate().arg("install").arg(&defaults)).assert_code(0);
    for name in [
        "sh", "bash", "ash", "dash", "python", "python3", "perl", "ruby", "node", "php", "tar",
    ] {
        assert!(defaults.join("bin").join(name).is_symlink(), "{name}");
    }
}

#[test]
fn install_into_an_unwritable_dir_is_a_clear_error() {
    // Root ignores permission bits, so make the directory unwritable the way
    // this project does: a landgate sandbox with no rw path.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("landgate");
    let out = exec(
        &json!({"v": 1, "fs": {"rx": ["/"], "rw": []}}),
        &[
            landgate_bin().to_str().unwrap(),
            "install",
            target.to_str().unwrap(),
        ],
    );
    out.assert_code(120)
        .assert_stderr(&format!("cannot install into {}", target.display()))
        .assert_stderr("Permission denied")
        .assert_stderr("DIR must be a writable directory");
}

#[test]
fn install_as_pid_1_replaces_a_stale_read_only_temp() {
    // landgate-init is usually PID 1, so its temp name `.landgate.1.tmp`
    // repeats across restarts; a killed run can leave it behind at 0555.
    // `unshare --user --pid --fork` makes the launcher PID 1 with no
    // capability over the files (their owner is unmapped in the new user
    // namespace), like a non-root init container, even when the tests run
    // as root.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("landgate");
    std::fs::create_dir_all(&target).unwrap();
    let stale = target.join(".landgate.1.tmp");
    std::fs::write(&stale, "stale").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = std::process::Command::new("unshare");
    scrub(&mut cmd);
    cmd.args(["--user", "--pid", "--fork"])
        .arg(landgate_bin())
        .arg("install")
        .arg(&target)
        .args(["--wrappers", "sh"]);
    run(&mut cmd).assert_code(0).assert_stdout("installed");
    assert!(!stale.exists(), "the stale temp must be gone");
    assert_eq!(
        std::fs::metadata(target.join("landgate")).unwrap().len(),
        std::fs::metadata(landgate_bin()).unwrap().len()
    );
}

#[test]
fn nesting_beyond_16_landlock_layers_is_a_clear_error() {
    // Each `landgate exec` adds a Landlock layer; the kernel allows 16
    // (landlock_restrict_self fails with E2BIG beyond).
    let policy = r#"{"v":1,"net":{"connect":[443]}}"#;
    let nested = |layers: usize| {
        let bin = landgate_bin().to_str().unwrap();
        let mut args = Vec::new();
        for _ in 1..layers {
            args.extend([bin, "exec", "--"]);
        }
        args.push("true");
        let mut cmd = landgate();
        cmd.args(["exec", "--"])
            .args(&args)
            .env("LANDGATE_POLICY", policy)
            .env("LANDGATE_QUIET", "1");
        run(&mut cmd)
    };
    nested(16).assert_code(0);
    nested(17)
        .assert_code(123)
        .assert_stderr("this process is already inside 16 nested Landlock sandboxes, the kernel's limit (landlock_restrict_self failed with E2BIG)")
        .assert_stderr("keep LANDGATE_ACTIVE=1 in the environment");
}
