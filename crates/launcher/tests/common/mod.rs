//! Shared helpers for the launcher's integration tests: they run the built
//! `landgate` binary as a child process on this machine's real kernel (Linux
//! 6.18, Landlock ABI 7), so the test process itself is never sandboxed.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use serde_json::json;

/// errno values as this kernel reports them.
pub const EACCES: i32 = 13;
pub const ENOSYS: i32 = 38;
pub const EPROTONOSUPPORT: i32 = 93;
pub const EOPNOTSUPP: i32 = 95;

pub fn landgate_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_landgate"))
}

/// `landgate` with a clean landgate environment (nothing inherited from
/// whoever runs the tests).
pub fn landgate() -> Command {
    let mut cmd = Command::new(landgate_bin());
    scrub(&mut cmd);
    cmd
}

/// Removes every `LANDGATE_*` variable the test runner might carry.
pub fn scrub(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LANDGATE_") {
            cmd.env_remove(key);
        }
    }
}

/// `landgate exec` under `policy` (JSON value) running `command`.
pub fn exec(policy: &serde_json::Value, command: &[&str]) -> Run {
    let mut cmd = landgate();
    cmd.arg("exec")
        .arg("--")
        .args(command)
        .env("LANDGATE_POLICY", policy.to_string());
    run(&mut cmd)
}

/// What a child did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub pid: u32,
}

impl Run {
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{self:#?}");
        self
    }

    pub fn assert_stdout(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}: {self:#?}"
        );
        self
    }

    pub fn assert_stderr(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:#?}"
        );
        self
    }

    /// The errno a probe reported (`errno=N ...`), or `None` for `ok`.
    pub fn probe_errno(&self) -> Option<i32> {
        let first = self.stdout.lines().next().unwrap_or_default();
        if first.starts_with("ok") {
            return None;
        }
        let n = first
            .strip_prefix("errno=")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("not a probe result: {self:#?}"));
        Some(n.parse().unwrap())
    }
}

pub fn run(cmd: &mut Command) -> Run {
    cmd.stdin(Stdio::null());
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        pid,
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Go probe (crates/launcher/tests/go/probe), built once per test binary with
/// the machine's Go toolchain. Statically linked (CGO_ENABLED=0) so that it
/// runs under filesystem policies that do not allow reading /lib.
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/probe");
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-probe");
        std::fs::create_dir_all(&out_dir).unwrap();
        let out = out_dir.join("probe");
        let tmp = out_dir.join(format!("probe.{}.tmp", std::process::id()));
        let built = Command::new("go")
            .args(["build", "-o"])
            .arg(&tmp)
            .arg(".")
            .current_dir(&src)
            .env("CGO_ENABLED", "0")
            .env("GOTOOLCHAIN", "local")
            .output()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run `go` ({err}): install Go >= 1.24 (e.g. apt-get install golang-go, or https://go.dev/dl) to build the MPTCP test program in {}",
                    src.display()
                )
            });
        assert!(
            built.status.success(),
            "go build failed in {}: {}",
            src.display(),
            String::from_utf8_lossy(&built.stderr)
        );
        std::fs::rename(&tmp, &out).unwrap();
        out
    })
}

/// The probe's path as a string, for command lines.
pub fn probe_str() -> &'static str {
    probe().to_str().unwrap()
}

/// The status line the launcher prints when everything is enforced here.
pub const FULLY_ENFORCED: &str = "landgate: FullyEnforced (abi ";

/// A listener outside the sandbox, non-blocking so that the test can ask
/// whether anything connected.
pub fn outside_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// Whether a connection arrives within `wait`.
pub fn accepts_within(listener: &TcpListener, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        match listener.accept() {
            Ok(_) => return true,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => panic!("accept: {err}"),
        }
    }
}
