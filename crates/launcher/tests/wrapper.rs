//! Wrapper mode (argv[0] is not `landgate`) and PATH resolution.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A temp dir with `bin/sh` -> the built launcher, like /landgate/bin.
struct WrapperDir {
    root: tempfile::TempDir,
}

impl WrapperDir {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        std::fs::create_dir_all(root.path().join("rw")).unwrap();
        std::fs::create_dir_all(root.path().join("rx")).unwrap();
        symlink(landgate_bin(), root.path().join("bin/sh")).unwrap();
        Self { root }
    }

    fn bin(&self) -> PathBuf {
        self.root.path().join("bin")
    }

    fn path_var(&self) -> String {
        format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin().display())
    }

    fn sub(&self, name: &str) -> String {
        self.root.path().join(name).to_str().unwrap().to_owned()
    }

    fn policy(&self) -> String {
        json!({"v": 1, "fs": {"rx": ["/"], "rw": [self.sub("rw")]}}).to_string()
    }

    /// `sh ARGS` run the way `kubectl exec pod -- sh` would: by name on PATH.
    fn sh(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin().join("sh"));
        scrub(&mut cmd);
        cmd.arg0("sh").args(args).env("PATH", self.path_var());
        cmd
    }
}

use std::os::unix::process::CommandExt;

#[test]
fn a_wrapper_symlink_runs_the_real_sh_sandboxed() {
    let w = WrapperDir::new();
    let script = format!(
        "echo active=$LANDGATE_ACTIVE; echo ok > {rw}/f && echo rw-ok; {probe} write {rx}/f",
        rw = w.sub("rw"),
        rx = w.sub("rx"),
        probe = probe_str()
    );
    let out = run(w.sh(&["-c", &script]).env("LANDGATE_POLICY", w.policy()));
    out.assert_code(1)
        .assert_stdout("active=1")
        .assert_stdout("rw-ok")
        .assert_stderr(FULLY_ENFORCED);
    assert_eq!(out.probe_errno_line(), Some(EACCES), "{out:#?}");
    assert!(!Path::new(&w.sub("rx")).join("f").exists());
}

#[test]
fn a_wrapper_without_a_policy_refuses_to_run() {
    let w = WrapperDir::new();
    let marker = w.sub("rw/ran");
    let out = run(&mut w.sh(&["-c", &format!("echo > {marker}")]));
    out.assert_code(121)
        .assert_stderr("LANDGATE_POLICY is not set: refusing to run sh without its sandbox")
        .assert_stderr("pass LANDGATE_POLICY and LANDGATE_ACTIVE through");
    assert!(!Path::new(&marker).exists());
}

#[test]
fn a_child_started_with_a_filtered_env_is_refused_with_the_cause_and_the_fix() {
    // A sandboxed program starts `sh` with env={"PATH": ...}: the wrapper on
    // PATH gets neither LANDGATE_POLICY nor LANDGATE_ACTIVE. It must refuse
    // (never run unsandboxed) and say why and what to do.
    let w = WrapperDir::new();
    let marker = w.sub("rw/ran");
    let script = format!(
        "env -i PATH={path} sh -c 'echo > {marker}'; echo inner-exit=$?",
        path = w.path_var(),
    );
    let out = run(w.sh(&["-c", &script]).env("LANDGATE_POLICY", w.policy()));
    out.assert_code(0)
        .assert_stdout("inner-exit=121")
        .assert_stderr("LANDGATE_POLICY is not set: refusing to run sh without its sandbox. Likely cause: a sandboxed program started `sh` with a cleared or filtered environment")
        .assert_stderr("Fix: pass LANDGATE_POLICY and LANDGATE_ACTIVE through to the child's environment, or call the program by its absolute path");
    assert!(!Path::new(&marker).exists());

    // The suggested fix: by absolute path the real sh runs, still inside the
    // sandbox it inherited.
    let script = format!(
        "env -i PATH={path} /bin/sh -c 'echo > {rw}/ok && echo rw-ok; {probe} write {rx}/f'",
        path = w.path_var(),
        rw = w.sub("rw"),
        rx = w.sub("rx"),
        probe = probe_str(),
    );
    let out = run(w.sh(&["-c", &script]).env("LANDGATE_POLICY", w.policy()));
    out.assert_stdout("rw-ok");
    assert_eq!(out.probe_errno_line(), Some(EACCES), "{out:#?}");
}

#[test]
fn a_wrapper_inside_the_sandbox_does_not_stack_another_layer() {
    let w = WrapperDir::new();
    // The inner `sh` is found on PATH: the wrapper again, which sees
    // LANDGATE_ACTIVE=1 and execs the real sh without a second status line.
    let out = run(w
        .sh(&["-c", "sh -c 'echo inner=$LANDGATE_ACTIVE'"])
        .env("LANDGATE_POLICY", w.policy()));
    out.assert_code(0).assert_stdout("inner=1");
    assert_eq!(out.stderr.matches("landgate: ").count(), 1, "{out:#?}");
}

#[test]
fn exec_resolves_commands_on_path_skipping_the_wrappers() {
    let w = WrapperDir::new();
    let mut cmd = landgate();
    cmd.args(["exec", "--", "sh", "-c", "echo resolved"])
        .env("PATH", w.path_var())
        .env("LANDGATE_POLICY", w.policy());
    let out = run(&mut cmd);
    out.assert_code(0).assert_stdout("resolved");
    // One status line: the launcher did not exec its own wrapper.
    assert_eq!(out.stderr.matches("landgate: ").count(), 1, "{out:#?}");
}

#[test]
fn a_wrapper_with_no_real_program_behind_it_says_so() {
    let w = WrapperDir::new();
    symlink(landgate_bin(), w.bin().join("no-such-tool")).unwrap();
    let mut cmd = Command::new(w.bin().join("no-such-tool"));
    scrub(&mut cmd);
    cmd.env("PATH", w.bin()).env("LANDGATE_POLICY", w.policy());
    run(&mut cmd)
        .assert_code(127)
        .assert_stderr("no-such-tool: command not found on PATH")
        .assert_stderr("wrapper of that name was skipped");
}

trait ProbeLine {
    fn probe_errno_line(&self) -> Option<i32>;
}

impl ProbeLine for Run {
    /// The errno of the first `errno=` line anywhere in stdout.
    fn probe_errno_line(&self) -> Option<i32> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("errno="))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    }
}
