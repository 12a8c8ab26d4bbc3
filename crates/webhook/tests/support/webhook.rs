//! A landgate webhook on loopback to speak to over TLS, with certificates
//! from a throw-away CA that the clients here trust alone. Either served in
//! process (`BoundServer` bound on port 0, served on a task), or the real
//! `landgate-webhook serve` binary started with `--listen 127.0.0.1:0`, its
//! addresses read from the line it logs once bound. Neither picks a free
//! port and hopes it stays free.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use landgate_engine::settings::Settings;
use landgate_webhook::server::{BoundServer, ConnectionLimits, ServerConfig};
use landgate_webhook::tls::{CertFiles, DevCa, dev_names, install_crypto_provider};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A running webhook: stopped when dropped (the binary killed, its log
/// printed if the test failed).
pub struct Webhook {
    /// The HTTPS (admission) address.
    pub addr: SocketAddr,
    /// The plain-HTTP admin address.
    pub admin: SocketAddr,
    /// Holds tls.crt and tls.key (and the binary's log).
    pub dir: tempfile::TempDir,
    /// Issued tls.crt; issues rotated certificates.
    pub ca: DevCa,
    running: Running,
}

enum Running {
    /// Shuts down, as on SIGTERM, when the sender is dropped.
    InProcess(Option<oneshot::Sender<()>>),
    Binary {
        child: Child,
        log: PathBuf,
    },
}

/// A CA, and a serving certificate for localhost written to a new directory.
fn certificates() -> (tempfile::TempDir, DevCa, CertFiles) {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::new().unwrap();
    let (cert, key) = ca.issue(&dev_names()).unwrap();
    let files = CertFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    std::fs::write(&files.cert, cert).unwrap();
    std::fs::write(&files.key, key).unwrap();
    (dir, ca, files)
}

/// The binary's defaults (the flags in `cli::LimitArgs`), listening on
/// 127.0.0.1 port 0.
pub fn default_config(cert_files: CertFiles) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        cert_files,
        max_body_bytes: 4 * 1024 * 1024,
        request_timeout: Duration::from_secs(3),
        shutdown_grace: Duration::from_secs(20),
        connections: ConnectionLimits {
            handshake_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 100,
            max_connections: 1024,
            admin_max_connections: 64,
        },
    }
}

impl Webhook {
    /// Binds in process with the binary's defaults, as changed by
    /// `configure`, and serves on a task.
    pub async fn in_process(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let (dir, ca, cert_files) = certificates();
        let mut config = default_config(cert_files);
        configure(&mut config);
        let bound = BoundServer::bind(config, Settings::default())
            .await
            .expect("the server binds");
        let (addr, admin) = (bound.local_addr(), bound.admin_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(bound.serve(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin,
            dir,
            ca,
            running: Running::InProcess(Some(stop)),
        }
    }

    /// Starts `landgate-webhook serve` with JSON logs and `extra` flags, and
    /// waits until it is ready. Without a cluster (no Namespace watch) and
    /// without looking images up: the fixtures name Docker Hub, which tests
    /// never reach.
    pub async fn binary(extra: &[&str]) -> Self {
        let mut flags = vec!["--no-resolve"];
        flags.extend_from_slice(extra);
        Self::binary_resolving(&flags).await
    }

    /// [`Webhook::binary`], looking images up (point it at a test registry).
    pub async fn binary_resolving(extra: &[&str]) -> Self {
        let mut flags = vec!["--no-namespace-watch"];
        flags.extend_from_slice(extra);
        let mut webhook = Self::spawn(&flags, &[]).await;
        webhook.wait_ready().await;
        webhook
    }

    /// Starts `landgate-webhook serve` with `flags` and `env`, once it has
    /// bound its listeners: ready or not.
    pub async fn spawn(flags: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Self {
        let (dir, ca, cert_files) = certificates();
        let log = dir.path().join("webhook.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_landgate-webhook"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&cert_files.cert)
            .arg("--tls-key")
            .arg(&cert_files.key)
            .args(["--log-format", "json"])
            .args(flags)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("landgate-webhook starts");
        let bound = bound_addresses(&mut child, &log).await;
        Self {
            addr: bound.0,
            admin: bound.1,
            dir,
            ca,
            running: Running::Binary { child, log },
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Running::Binary { child, .. } = &mut self.running
                && let Some(status) = child.try_wait().unwrap()
            {
                panic!("webhook exited early with {status}:\n{}", self.log_text());
            }
            if self
                .admin_get("/readyz")
                .await
                .is_some_and(|(code, _)| code == 200)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("webhook not ready after 20s:\n{}", self.log_text());
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A client trusting only this webhook's CA, with no connection reuse
    /// (so each request is a new handshake).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca.ca_pem().as_bytes()).unwrap(),
            )
            .resolve("localhost", self.addr)
            .pool_max_idle_per_host(0)
            .tls_info(true)
    }

    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().unwrap()
    }

    /// POSTs `body` as JSON on a new connection: (status, body as JSON, or
    /// as a JSON string if it is not JSON).
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A plain-HTTP GET on the admin port: (status, body); `None` if the
    /// port does not answer.
    pub async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        let exchange = async {
            let mut tcp = tokio::net::TcpStream::connect(self.admin).await.ok()?;
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
            tcp.write_all(request.as_bytes()).await.ok()?;
            let mut response = String::new();
            tcp.read_to_string(&mut response).await.ok()?;
            let code = response.get(9..12)?.parse().ok()?;
            let body = response.split_once("\r\n\r\n")?.1.to_owned();
            Some((code, body))
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .ok()
            .flatten()
    }

    /// The admin port's /metrics text.
    pub async fn metrics(&self) -> String {
        let (status, text) = self.admin_get("/metrics").await.expect("/metrics answers");
        assert_eq!(status, 200, "{text}");
        text
    }

    /// The binary's process id.
    pub fn pid(&self) -> u32 {
        match &self.running {
            Running::Binary { child, .. } => child.id(),
            Running::InProcess(_) => panic!("an in-process webhook has no process of its own"),
        }
    }

    /// The binary's log so far (JSON lines); empty in process.
    pub fn log_text(&self) -> String {
        match &self.running {
            Running::Binary { log, .. } => std::fs::read_to_string(log).unwrap_or_default(),
            Running::InProcess(_) => String::new(),
        }
    }

    /// Sends the binary SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (at most `limit`) for the binary to exit.
    pub async fn exit_status(&mut self, limit: Duration) -> ExitStatus {
        let Running::Binary { child, .. } = &mut self.running else {
            panic!("an in-process webhook does not exit");
        };
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "webhook still running after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        match &mut self.running {
            Running::InProcess(stop) => drop(stop.take()),
            Running::Binary { child, log } => {
                let _ = child.kill();
                let _ = child.wait();
                if std::thread::panicking() {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    eprintln!("--- webhook log ---\n{text}");
                }
            }
        }
    }
}

/// The addresses from the binary's "serving" log line (JSON).
async fn bound_addresses(child: &mut Child, log: &std::path::Path) -> (SocketAddr, SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let serving = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|entry| entry["listen"].is_string() && entry["admin"].is_string());
        if let Some(entry) = serving {
            let addr = |key: &str| entry[key].as_str().unwrap().parse().unwrap();
            return (addr("listen"), addr("admin"));
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("webhook exited early with {status}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no listen address logged after 20s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A kubeconfig in `dir` for an API server at `addr` (TLS unchecked, a
/// dummy token): for tests where it never answers.
pub fn kubeconfig_for(dir: &std::path::Path, addr: SocketAddr) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{addr}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    path
}
