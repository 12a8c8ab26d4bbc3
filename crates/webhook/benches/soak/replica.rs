//! A replica: the real `landgate-webhook serve`, its addresses read from
//! its own log, its memory and descriptors from /proc, its admin port
//! spoken to over plain HTTP/1.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub struct Replica {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl Replica {
    pub fn start(name: &'static str, dir: &Path, flags: &[String]) -> Self {
        let log = dir.join(format!("{name}-{}.log", std::process::id()));
        let log = unique(log);
        let mut child = Command::new(env!("CARGO_BIN_EXE_landgate-webhook"))
            .arg("serve")
            // No cluster, and the fixtures' images are never looked up.
            .args(["--no-namespace-watch", "--no-resolve"])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .args([
                "--log-format",
                "json",
                "--log",
                "warn,landgate_webhook::server=info",
            ])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("landgate-webhook starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let (addr, admin) = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let serving = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e["listen"].is_string() && e["admin"].is_string());
            if let Some(e) = serving {
                let parse = |key: &str| e[key].as_str().and_then(|s| s.parse().ok());
                break (
                    parse("listen").expect("listen"),
                    parse("admin").expect("admin"),
                );
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("replica {name} exited with {status}:\n{text}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "replica {name} did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, addr, admin }
    }

    pub async fn wait_ready(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if admin_get(self.admin, "/readyz")
                .await
                .is_some_and(|(code, _)| code == 200)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmRSS:")
    }

    pub fn peak_rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmHWM:")
    }

    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// SIGTERM, then wait for the exit; `Some(code)` if it exited in time.
    pub async fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique(path: PathBuf) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    path.with_extension(format!("{n}.log"))
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

pub async fn admin_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut tcp = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(2), tcp.read_to_string(&mut text))
        .await
        .ok()?
        .ok()?;
    let code = text.get(9..12)?.parse().ok()?;
    Some((code, text.split_once("\r\n\r\n")?.1.to_owned()))
}
