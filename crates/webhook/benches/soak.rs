//! `just soak`: the real `landgate-webhook` binary, two replicas behind a
//! loopback stand-in for the Service (a TCP proxy choosing a ready replica
//! per connection, as kube-proxy does), under valid load and abuse at once:
//!
//! - valid AdmissionReviews (HTTP/2, and HTTP/1.1 as with DISABLE_HTTP2),
//!   paced, each with the webhook's timeoutSeconds;
//! - idle connections held open (TLS, then nothing; reopened when closed);
//! - slow headers (first request and kept-alive), slow bodies, oversized
//!   bodies, malformed JSON, HTTP/2 stream floods and a rapid-reset flood;
//! - a burst of connections at one replica past its cap;
//! - the serving certificate rotated twice (same CA, renamed into place);
//! - one replica taken out of the endpoints, sent SIGTERM and restarted.
//!
//! Bounded in count and time; prints its figures and exits non-zero when a
//! goal is missed. `cargo test --benches` runs a scaled-down smoke version.
//!
//! LANDGATE_SOAK_REVIEWS (10000), LANDGATE_SOAK_IDLE (1000) and
//! LANDGATE_SOAK_RATE (reviews/s, 500) change the size.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

#[path = "../tests/support/wire.rs"]
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use landgate_webhook::tls::{self, DevCa};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const REVIEW: &[u8] = include_bytes!("../../../tests/fixtures/admission/pod-create.json");
const MALFORMED: &[u8] = b"{\"apiVersion\": ";

/// The webhook's timeoutSeconds in manifests/: what the API server waits.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Nothing here may take longer than this.
const SOAK_DEADLINE: Duration = Duration::from_secs(300);
/// The memory limit in manifests/base/deployment.yaml.
const MEMORY_LIMIT_KIB: u64 = 256 * 1024;

/// Shorter deadlines than the defaults so that idle and slow connections
/// are closed several times within one run; the caps and stream limit are
/// the defaults but for --max-connections (see `max_connections`).
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BODY_BYTES: usize = 256 * 1024;
const MAX_CONCURRENT_STREAMS: u32 = 100;

struct Plan {
    reviews: usize,
    idle: usize,
    rate: usize,
    /// Valid-load workers per HTTP/2 client (4 clients) and on the
    /// HTTP/1.1 client (one connection each).
    workers: usize,
    slow_clients: usize,
    flood_streams: u32,
}

impl Plan {
    fn from_env(smoke: bool) -> Self {
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        if smoke {
            return Self {
                reviews: 300,
                idle: 20,
                rate: 150,
                workers: 2,
                slow_clients: 2,
                flood_streams: 150,
            };
        }
        Self {
            reviews: number("LANDGATE_SOAK_REVIEWS", 10_000),
            idle: number("LANDGATE_SOAK_IDLE", 1000),
            rate: number("LANDGATE_SOAK_RATE", 500).max(1),
            workers: 6,
            slow_clients: 20,
            flood_streams: 1000,
        }
    }

    /// Every idle connection can land on one replica while the other
    /// restarts: the cap leaves room above them for the API server's own
    /// connections, and the cap burst fills it to show the refusal.
    fn max_connections(&self) -> usize {
        self.idle + self.idle / 2 + 24
    }

    fn expected_duration(&self) -> Duration {
        Duration::from_secs_f64(self.reviews as f64 / self.rate as f64)
    }

    fn flags(&self) -> Vec<String> {
        let secs = |d: Duration| format!("{}ms", d.as_millis());
        [
            ("--first-request-timeout", secs(FIRST_REQUEST_TIMEOUT)),
            ("--header-read-timeout", secs(HEADER_READ_TIMEOUT)),
            ("--request-timeout", secs(REQUEST_TIMEOUT)),
            ("--max-body-bytes", MAX_BODY_BYTES.to_string()),
            ("--max-connections", self.max_connections().to_string()),
            (
                "--max-concurrent-streams",
                MAX_CONCURRENT_STREAMS.to_string(),
            ),
            ("--shutdown-grace", "5s".to_owned()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
    }
}

fn main() -> ExitCode {
    // `cargo test --benches` runs this without --bench: a small smoke run.
    let smoke = std::env::args().all(|a| a != "--bench");
    let plan = Plan::from_env(smoke);
    tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = std::time::Instant::now();
    let report = runtime.block_on(async {
        match tokio::time::timeout(SOAK_DEADLINE, soak(&plan)).await {
            Ok(report) => report,
            Err(_) => {
                let mut report = Report::default();
                report.goal(false, format!("finished within {SOAK_DEADLINE:?}"));
                report
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    let mut report = report;
    report.line(format!("duration: {:.1}s", started.elapsed().as_secs_f64()));
    report.exit_code()
}

// === replicas ===

struct Replica {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Replica {
    fn start(name: &'static str, dir: &Path, flags: &[String]) -> Self {
        let log = dir.join(format!("{name}-{}.log", std::process::id()));
        let log = unique(log);
        let mut child = Command::new(env!("CARGO_BIN_EXE_landgate-webhook"))
            .arg("serve")
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

    async fn wait_ready(&self) -> bool {
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

    fn rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmRSS:")
    }

    fn peak_rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmHWM:")
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// SIGTERM, then wait for the exit; `Some(code)` if it exited in time.
    async fn terminate(&mut self, limit: Duration) -> Option<i32> {
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

async fn admin_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
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

/// `name{labels} value` lines of a metrics text that start with `prefix`.
fn metric_lines(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(prefix) && !l.ends_with(" 0"))
        .map(str::to_owned)
        .collect()
}

// === the Service stand-in ===

/// A TCP proxy choosing a ready replica per connection, round robin, like
/// kube-proxy over the Service's endpoints; connections it forwarded keep
/// going to their replica when it leaves the endpoints (conntrack).
#[derive(Default)]
struct Endpoints {
    ready: RwLock<Vec<SocketAddr>>,
    next: AtomicUsize,
    dial_failures: AtomicUsize,
}

impl Endpoints {
    fn set(&self, ready: Vec<SocketAddr>) {
        *self.ready.write().expect("endpoints") = ready;
    }

    fn pick(&self) -> Option<SocketAddr> {
        let ready = self.ready.read().expect("endpoints");
        (!ready.is_empty()).then(|| ready[self.next.fetch_add(1, Ordering::Relaxed) % ready.len()])
    }
}

async fn run_proxy(listener: TcpListener, endpoints: Arc<Endpoints>) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let Some(backend) = endpoints.pick() else {
                endpoints.dial_failures.fetch_add(1, Ordering::Relaxed);
                return;
            };
            match TcpStream::connect(backend).await {
                Ok(mut upstream) => {
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(_) => {
                    endpoints.dial_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

// === bookkeeping ===

/// (outcome, as expected?) → count.
type Outcomes = BTreeMap<(String, bool), usize>;

/// Outcomes by class.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<&'static str, Outcomes>>);

impl Tally {
    fn add(&self, class: &'static str, outcome: impl Into<String>, expected: bool) {
        *self
            .0
            .lock()
            .expect("tally")
            .entry(class)
            .or_default()
            .entry((outcome.into(), expected))
            .or_default() += 1;
    }
}

#[derive(Default)]
struct Report {
    lines: Vec<String>,
    missed: Vec<String>,
}

impl Report {
    fn line(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    fn goal(&mut self, met: bool, goal: impl Into<String>) {
        let goal = goal.into();
        self.lines
            .push(format!("  [{}] {goal}", if met { "ok" } else { "MISSED" }));
        if !met {
            self.missed.push(goal);
        }
    }

    fn exit_code(&self) -> ExitCode {
        for line in &self.lines {
            println!("{line}");
        }
        if self.missed.is_empty() {
            println!("soak: every goal met");
            ExitCode::SUCCESS
        } else {
            println!("soak: {} goal(s) missed:", self.missed.len());
            for goal in &self.missed {
                println!("  - {goal}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What the load tasks share.
struct Soak {
    ca_pem: String,
    proxy: SocketAddr,
    running: AtomicBool,
    tally: Tally,
    valid_ok: AtomicUsize,
    valid_failed: AtomicUsize,
    valid_errors: Mutex<Vec<String>>,
    idle_open: AtomicUsize,
    idle_reaped: AtomicUsize,
    idle_longest_ms: AtomicU64,
}

impl Soak {
    fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    fn tls(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        wire::connector(&self.ca_pem, alpn)
    }

    fn client(&self, http1: bool) -> reqwest::Client {
        let builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA"),
            )
            .resolve("localhost", self.proxy)
            .timeout(CLIENT_TIMEOUT)
            // Go's IdleConnTimeout, which client-go keeps.
            .pool_idle_timeout(Duration::from_secs(90));
        let builder = if http1 { builder.http1_only() } else { builder };
        builder.build().expect("client")
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.proxy.port())
    }
}

// === the run ===

async fn soak(plan: &Plan) -> Report {
    let mut report = Report::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = DevCa::new().expect("CA");
    write_certificate(&ca, dir.path());
    let flags = plan.flags();
    report.line(format!(
        "landgate soak: {} valid reviews at {}/s, {} idle connections, 2 replicas behind a loopback proxy",
        plan.reviews, plan.rate, plan.idle
    ));
    report.line(format!("replica flags: {}", flags.join(" ")));
    report.line(format!(
        "  (--max-connections {}: all {} idle connections may land on one replica while the other restarts, \
         and the API server's connections need room above them; the default (1024) is covered by tests/limits.rs)",
        plan.max_connections(),
        plan.idle
    ));

    let a = Replica::start("a", dir.path(), &flags);
    let mut b = Replica::start("b", dir.path(), &flags);
    if !(a.wait_ready().await && b.wait_ready().await) {
        report.goal(false, "replicas became ready");
        return report;
    }
    let endpoints = Arc::new(Endpoints::default());
    endpoints.set(vec![a.addr, b.addr]);
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy");
    let proxy = proxy_listener.local_addr().expect("proxy address");
    let proxy_task = tokio::spawn(run_proxy(proxy_listener, endpoints.clone()));

    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_idle, fds_before) = (a.rss_kib(), a.fds());

    let soak = Arc::new(Soak {
        ca_pem: ca.ca_pem(),
        proxy,
        running: AtomicBool::new(true),
        tally: Tally::default(),
        valid_ok: AtomicUsize::new(0),
        valid_failed: AtomicUsize::new(0),
        valid_errors: Mutex::new(Vec::new()),
        idle_open: AtomicUsize::new(0),
        idle_reaped: AtomicUsize::new(0),
        idle_longest_ms: AtomicU64::new(0),
    });

    let started = Instant::now();
    let mut abuse = tokio::task::JoinSet::new();
    for i in 0..plan.idle {
        let soak = soak.clone();
        // Ramp up over two seconds rather than overflow the listen backlog.
        let delay = Duration::from_millis((i * 2000 / plan.idle.max(1)) as u64);
        abuse.spawn(async move {
            tokio::time::sleep(delay).await;
            idle_holder(&soak).await;
        });
    }
    for _ in 0..plan.slow_clients {
        let s = soak.clone();
        abuse.spawn(async move { slow_headers(&s, false).await });
        let s = soak.clone();
        abuse.spawn(async move { slow_headers(&s, true).await });
        let s = soak.clone();
        abuse.spawn(async move { slow_body(&s).await });
    }
    let s = soak.clone();
    abuse.spawn(async move { bad_bodies(&s).await });
    let flood_streams = plan.flood_streams;
    let s = soak.clone();
    abuse.spawn(async move {
        while s.running() {
            stream_flood(&s, flood_streams, false).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });

    let valid = tokio::spawn(valid_load(
        soak.clone(),
        plan.reviews,
        plan.rate,
        plan.workers,
    ));

    // The timeline, in fractions of the expected duration.
    let expected = plan.expected_duration();
    let at = |fraction: f64| started + expected.mul_f64(fraction);
    let mut peak_open = 0usize;

    let stamp = |what: &str| format!("at {:>5.1}s: {what}", started.elapsed().as_secs_f64());
    tokio::time::sleep_until(at(0.15)).await;
    report.line(stamp("certificate rotation 1"));
    let replicas = [("a", a.addr), ("b", b.addr)];
    rotate(&ca, dir.path(), 1, &soak, &replicas, &mut report).await;

    tokio::time::sleep_until(at(0.25)).await;
    peak_open = peak_open.max(soak.idle_open.load(Ordering::Relaxed));
    report.line(stamp("cap burst on replica a"));
    cap_burst(&soak, a.addr, plan.max_connections(), &mut report).await;

    tokio::time::sleep_until(at(0.4)).await;
    peak_open = peak_open.max(soak.idle_open.load(Ordering::Relaxed));
    // What a pod deletion does: endpoints first, the preStop pause (5s in
    // the Deployment, shortened), then SIGTERM.
    report.line(stamp("replica b out of the endpoints"));
    endpoints.set(vec![a.addr]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.line(stamp("SIGTERM to replica b"));
    let restart_started = Instant::now();
    let exit = b.terminate(Duration::from_secs(10)).await;
    report.line(format!(
        "replica b: SIGTERM -> exit {:?} after {:.1}s",
        exit,
        restart_started.elapsed().as_secs_f64()
    ));
    report.goal(exit == Some(0), "replica b drained and exited 0 on SIGTERM");
    drop(b);
    let b = Replica::start("b", dir.path(), &flags);
    let b_ready = b.wait_ready().await;
    endpoints.set(vec![a.addr, b.addr]);
    report.goal(b_ready, "replica b restarted and ready");
    report.line(stamp(&format!(
        "replica b restarted, back in the endpoints {:.1}s after SIGTERM",
        restart_started.elapsed().as_secs_f64()
    )));

    tokio::time::sleep_until(at(0.65)).await;
    report.line(stamp("certificate rotation 2"));
    let replicas = [("a", a.addr), ("b", b.addr)];
    rotate(&ca, dir.path(), 2, &soak, &replicas, &mut report).await;

    tokio::time::sleep_until(at(0.75)).await;
    peak_open = peak_open.max(soak.idle_open.load(Ordering::Relaxed));
    report.line(stamp("HTTP/2 rapid-reset flood"));
    stream_flood(&soak, plan.flood_streams, true).await;

    let valid_elapsed = valid.await.expect("valid load");
    soak.running.store(false, Ordering::Relaxed);
    // Every abuse loop ends within its own deadline after this.
    let drain = tokio::time::timeout(Duration::from_secs(20), async {
        while abuse.join_next().await.is_some() {}
    })
    .await;
    if drain.is_err() {
        abuse.abort_all();
    }
    report.goal(
        drain.is_ok(),
        "abuse loops ended within 20s of the last review",
    );

    // After: all clients gone; the replica's descriptors come back down.
    let settle = Instant::now() + Duration::from_secs(15);
    while a.fds() > fds_before + 4 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rss_after, fds_after, rss_peak) = (a.rss_kib(), a.fds(), a.peak_rss_kib());
    let metrics_a = admin_get(a.admin, "/metrics")
        .await
        .map(|r| r.1)
        .unwrap_or_default();
    proxy_task.abort();

    // === figures ===
    let ok = soak.valid_ok.load(Ordering::Relaxed);
    let failed = soak.valid_failed.load(Ordering::Relaxed);
    report.line(format!(
        "valid admissions: {ok} ok, {failed} failed, in {:.1}s ({:.0}/s)",
        valid_elapsed.as_secs_f64(),
        (ok + failed) as f64 / valid_elapsed.as_secs_f64()
    ));
    for error in soak.valid_errors.lock().expect("errors").iter().take(5) {
        report.line(format!("  failure: {error}"));
    }
    report.goal(
        failed == 0 && ok == plan.reviews,
        format!("all {} valid admissions allowed and patched", plan.reviews),
    );

    let reaped = soak.idle_reaped.load(Ordering::Relaxed);
    let longest = Duration::from_millis(soak.idle_longest_ms.load(Ordering::Relaxed));
    report.line(format!(
        "idle connections: {} held at once (peak seen), {reaped} closed by the server, longest lived {:.1}s",
        peak_open,
        longest.as_secs_f64()
    ));
    report.goal(
        reaped > 0 && longest <= FIRST_REQUEST_TIMEOUT + Duration::from_secs(2),
        format!(
            "no idle connection outlived --first-request-timeout ({:?}) by more than 2s",
            FIRST_REQUEST_TIMEOUT
        ),
    );

    report.line("invalid requests, by class (outcome: count):");
    let tally = std::mem::take(&mut *soak.tally.0.lock().expect("tally"));
    for (class, outcomes) in &tally {
        let total: usize = outcomes.values().sum();
        let unexpected: usize = outcomes
            .iter()
            .filter(|((_, expected), _)| !expected)
            .map(|(_, n)| n)
            .sum();
        let detail: Vec<String> = outcomes
            .iter()
            .map(|((outcome, expected), n)| {
                format!(
                    "{outcome}{}: {n}",
                    if *expected { "" } else { " (UNEXPECTED)" }
                )
            })
            .collect();
        report.line(format!("  {class:<34} {total:>6}  {}", detail.join(", ")));
        report.goal(
            unexpected == 0,
            format!("{class}: every attempt refused, answered 4xx/503 or closed at its deadline"),
        );
    }
    let dial_failures = endpoints.dial_failures.load(Ordering::Relaxed);
    report.line(format!(
        "proxy: {dial_failures} connections with no replica to go to"
    ));

    report.line(format!(
        "replica a: RSS idle {} MiB, peak {} MiB, after {} MiB; fds before {fds_before}, after {fds_after}",
        rss_idle / 1024,
        rss_peak / 1024,
        rss_after / 1024
    ));
    report.goal(
        rss_peak < MEMORY_LIMIT_KIB,
        format!(
            "peak RSS under the Deployment's memory limit ({} MiB)",
            MEMORY_LIMIT_KIB / 1024
        ),
    );
    report.goal(
        fds_after <= fds_before + 4,
        "replica a's file descriptors back to their idle count (+4)",
    );
    report.line("replica a metrics (non-zero):");
    for prefix in [
        "landgate_connections_closed_total",
        "landgate_connections_refused_total",
        "landgate_connections_open",
        "landgate_bad_requests_total",
        "landgate_tls_certificate_reloads_total",
        "landgate_admission_reviews_total",
    ] {
        for line in metric_lines(&metrics_a, prefix) {
            report.line(format!("  {line}"));
        }
    }
    drop(a);
    report
}

fn write_certificate(ca: &DevCa, dir: &Path) {
    let (cert, key) = ca.issue(&tls::dev_names()).expect("certificate");
    // Key first, each renamed into place: what certs/generate.sh does.
    for (name, contents) in [("tls.key", &key), ("tls.crt", &cert)] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, contents).expect("write certificate");
        std::fs::rename(&tmp, dir.join(name)).expect("rename certificate");
    }
}

/// Rotates the serving certificate, then checks that a new handshake with
/// each replica gets it.
async fn rotate(
    ca: &DevCa,
    dir: &Path,
    n: usize,
    soak: &Soak,
    replicas: &[(&str, SocketAddr)],
    report: &mut Report,
) {
    write_certificate(ca, dir);
    let expected = {
        use rustls::pki_types::pem::PemObject as _;
        let pem = std::fs::read(dir.join("tls.crt")).expect("certificate");
        rustls::pki_types::CertificateDer::from_pem_slice(&pem)
            .expect("PEM")
            .to_vec()
    };
    for (name, addr) in replicas {
        let served = match wire::connect(&soak.tls(&[]), *addr).await {
            Ok(tls) => tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| cert.to_vec()),
            Err(_) => None,
        };
        report.goal(
            served.as_ref() == Some(&expected),
            format!(
                "rotation {n}: replica {name} serves the new certificate on the next handshake"
            ),
        );
    }
}

// === valid load ===

/// Paced reviews over four HTTP/2 clients and one HTTP/1.1 client; returns
/// how long they took.
async fn valid_load(soak: Arc<Soak>, reviews: usize, rate: usize, workers: usize) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client_index in 0..5 {
        let http1 = client_index == 4;
        let client = soak.client(http1);
        for _ in 0..workers {
            let (soak, client, next) = (soak.clone(), client.clone(), next.clone());
            let url = soak.url("/mutate");
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= reviews {
                        return;
                    }
                    tokio::time::sleep_until(
                        started + Duration::from_secs_f64(i as f64 / rate as f64),
                    )
                    .await;
                    let outcome = async {
                        let response = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(REVIEW)
                            .send()
                            .await
                            .map_err(|e| format!("{e:?}"))?;
                        let status = response.status();
                        let body = response.bytes().await.map_err(|e| format!("body: {e:?}"))?;
                        let allowed = body.windows(14).any(|w| w == b"\"allowed\":true");
                        let patched = body.windows(9).any(|w| w == b"JSONPatch");
                        if status == 200 && allowed && patched {
                            Ok(())
                        } else {
                            Err(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(200)])
                            ))
                        }
                    }
                    .await;
                    match outcome {
                        Ok(()) => soak.valid_ok.fetch_add(1, Ordering::Relaxed),
                        Err(error) => {
                            let mut errors = soak.valid_errors.lock().expect("errors");
                            errors.push(format!(
                                "at {:.1}s, {}: {error}",
                                started.elapsed().as_secs_f64(),
                                if http1 { "HTTP/1.1" } else { "HTTP/2" }
                            ));
                            soak.valid_failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    started.elapsed()
}

// === abuse ===

/// Connects (TLS, then nothing) and waits for the server to close; again,
/// until the run ends.
async fn idle_holder(soak: &Soak) {
    let connector = soak.tls(&[]);
    while soak.running() {
        let mut tls = match wire::connect(&connector, soak.proxy).await {
            Ok(tls) => tls,
            Err(_) => {
                // Refused at a replica's cap (or while it restarts).
                soak.tally.add("idle: connection refused", "refused", true);
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let since = Instant::now();
        soak.idle_open.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 512];
        let closed = loop {
            tokio::select! {
                read = tls.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break true,
                    Ok(_) => {}
                },
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if !soak.running() { break false; }
                }
            }
        };
        soak.idle_open.fetch_sub(1, Ordering::Relaxed);
        if closed {
            soak.idle_reaped.fetch_add(1, Ordering::Relaxed);
            let lived = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
            soak.idle_longest_ms.fetch_max(lived, Ordering::Relaxed);
        }
    }
}

/// Request headers one line every 500ms: on a new connection (the first
/// request deadline) or after a first request (the header deadline).
async fn slow_headers(soak: &Soak, kept_alive: bool) {
    let class = if kept_alive {
        "slow headers (kept-alive)"
    } else {
        "slow headers (first request)"
    };
    let deadline = if kept_alive {
        HEADER_READ_TIMEOUT
    } else {
        FIRST_REQUEST_TIMEOUT
    };
    let connector = soak.tls(&[b"http/1.1"]);
    while soak.running() {
        let Ok(tls) = wire::connect(&connector, soak.proxy).await else {
            soak.tally.add(class, "refused at connect", true);
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        let (mut reader, mut writer) = tokio::io::split(tls);
        if kept_alive {
            let first = wire::http1_post("/mutate", REVIEW);
            if writer.write_all(&first).await.is_err()
                || wire::http1_response(&mut reader).await.is_err()
            {
                soak.tally.add(class, "first request failed", false);
                continue;
            }
        }
        let since = Instant::now();
        let trickle = tokio::spawn(async move {
            let _ = writer
                .write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
                .await;
            for i in 0..200 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if writer
                    .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            deadline + Duration::from_secs(5),
            reader.read_to_end(&mut buf),
        )
        .await;
        trickle.abort();
        let elapsed = since.elapsed();
        match read {
            Err(_) => soak.tally.add(class, "still open past its deadline", false),
            Ok(_) if !buf.is_empty() => {
                let status = String::from_utf8_lossy(&buf[..buf.len().min(12)]).to_string();
                soak.tally.add(
                    class,
                    format!("answered {}", status.trim()),
                    status.contains(" 4"),
                );
            }
            Ok(_) => soak.tally.add(
                class,
                "closed at its deadline",
                elapsed <= deadline + Duration::from_secs(2),
            ),
        }
    }
}

/// Headers at once, then the body 16 bytes every 500ms: the request
/// timeout answers.
async fn slow_body(soak: &Soak) {
    const CLASS: &str = "slow body";
    let connector = soak.tls(&[b"http/1.1"]);
    while soak.running() {
        let Ok(tls) = wire::connect(&connector, soak.proxy).await else {
            soak.tally.add(CLASS, "refused at connect", true);
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        let (mut reader, mut writer) = tokio::io::split(tls);
        let since = Instant::now();
        let trickle = tokio::spawn(async move {
            let head = format!(
                "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                REVIEW.len()
            );
            let _ = writer.write_all(head.as_bytes()).await;
            for chunk in REVIEW.chunks(16) {
                if writer.write_all(chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let read = tokio::time::timeout(
            REQUEST_TIMEOUT + Duration::from_secs(5),
            wire::http1_response(&mut reader),
        )
        .await;
        trickle.abort();
        match read {
            Err(_) => soak.tally.add(CLASS, "still open past its deadline", false),
            Ok(Ok((status, _))) => soak.tally.add(
                CLASS,
                format!("answered {status}"),
                // The request timeout's answer (TimeoutLayer), in time.
                (status == 503 || (400..500).contains(&status))
                    && since.elapsed() <= REQUEST_TIMEOUT + Duration::from_secs(2),
            ),
            Ok(Err(_)) => soak.tally.add(CLASS, "closed without an answer", false),
        }
    }
}

/// Oversized bodies (declared and chunked) and malformed JSON, over
/// HTTP/2 and HTTP/1.1 clients.
async fn bad_bodies(soak: &Soak) {
    let clients = [soak.client(false), soak.client(true)];
    let url = soak.url("/mutate");
    let oversized = vec![b'x'; MAX_BODY_BYTES + 1024];
    let mut round = 0usize;
    while soak.running() {
        let client = &clients[round % 2];
        round += 1;
        let cases: [(&'static str, reqwest::Body, u16); 3] = [
            (
                "oversized body (Content-Length)",
                reqwest::Body::from(oversized.clone()),
                413,
            ),
            ("oversized body (chunked)", chunked(oversized.clone()), 413),
            (
                "malformed JSON",
                reqwest::Body::from(MALFORMED.to_vec()),
                400,
            ),
        ];
        for (class, body, expected) in cases {
            match client.post(&url).body(body).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    soak.tally
                        .add(class, format!("answered {status}"), status == expected);
                }
                // The server answers 413 before reading the body and closes
                // an HTTP/1.1 connection; a client still writing may see the
                // close instead of the answer.
                Err(err)
                    if class.starts_with("oversized") && (err.is_request() || err.is_body()) =>
                {
                    soak.tally
                        .add(class, "closed while the client was still sending", true);
                }
                Err(err) if err.is_connect() => soak.tally.add(class, "refused at connect", true),
                Err(err) => soak.tally.add(class, format!("error: {err}"), false),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn chunked(bytes: Vec<u8>) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

/// One HTTP/2 connection opening `streams` streams as fast as it can:
/// requests with malformed bodies, or (rapid reset) HEADERS each followed
/// by RST_STREAM.
async fn stream_flood(soak: &Soak, streams: u32, rapid_reset: bool) {
    let class = if rapid_reset {
        "HTTP/2 rapid reset (streams)"
    } else {
        "HTTP/2 stream flood (streams)"
    };
    let Ok(mut tls) = wire::connect(&soak.tls(&[b"h2"]), soak.proxy).await else {
        soak.tally.add(class, "refused at connect", true);
        return;
    };
    if tls.write_all(&wire::preface()).await.is_err() {
        soak.tally.add(class, "closed before the preface", false);
        return;
    }
    let (mut reader, mut writer) = tokio::io::split(tls);
    let writing = tokio::spawn(async move {
        let ids: Vec<u32> = (0..streams).map(|n| 1 + 2 * n).collect();
        for batch in ids.chunks(50) {
            let mut frames = Vec::new();
            for &id in batch {
                if rapid_reset {
                    frames.push(wire::post_headers(id, "/mutate", false));
                    // CANCEL
                    frames.push(wire::Frame::new(
                        wire::RST_STREAM,
                        0,
                        id,
                        0x8u32.to_be_bytes().to_vec(),
                    ));
                } else {
                    frames.push(wire::post_headers(id, "/mutate", false));
                    frames.push(wire::data(id, MALFORMED, true));
                }
            }
            if wire::write_frames(&mut writer, &frames).await.is_err() {
                return writer;
            }
        }
        writer
    });
    // Per stream: its status, or the RST_STREAM code.
    let mut answered: BTreeMap<u32, String> = BTreeMap::new();
    let mut goaway: Option<(u32, u32)> = None;
    // How the connection ended, when the server ended it.
    let mut ended = "";
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let frame = match wire::read_frame(&mut reader).await {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    ended = "closed";
                    break;
                }
                Err(_) => {
                    ended = "reset";
                    break;
                }
            };
            match frame.kind {
                wire::HEADERS if frame.stream != 0 => {
                    let status = frame.status().map_or("other".to_owned(), |s| s.to_string());
                    answered
                        .entry(frame.stream)
                        .or_insert(format!("answered {status}"));
                }
                wire::RST_STREAM => {
                    let code = frame.error_code().unwrap_or(u32::MAX);
                    let outcome = match code {
                        7 => "refused (REFUSED_STREAM)".to_owned(),
                        8 => "reset (CANCEL)".to_owned(),
                        0 => "reset (NO_ERROR)".to_owned(),
                        other => format!("reset (code {other})"),
                    };
                    answered.entry(frame.stream).or_insert(outcome);
                }
                wire::GOAWAY => {
                    let last = frame.payload.get(..4).map_or(0, |b| {
                        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
                    });
                    // Keep reading: streams up to `last` may still be
                    // answered before the server closes.
                    goaway = Some((last, frame.error_code().unwrap_or(u32::MAX)));
                }
                _ => {}
            }
            if goaway.is_none() && answered.len() as u32 >= streams {
                break;
            }
        }
    })
    .await;
    let writer = writing.await.ok();
    drop(writer);
    if read.is_err() {
        soak.tally
            .add(class, "connection still open after 15s", false);
    }
    let conn_class = if rapid_reset {
        "HTTP/2 rapid reset (connections)"
    } else {
        "HTTP/2 stream flood (connections)"
    };
    match goaway {
        Some((_, code)) => soak
            .tally
            .add(conn_class, format!("GOAWAY code {code}"), true),
        None if ended.is_empty() => soak.tally.add(conn_class, "every stream answered", true),
        None => soak.tally.add(
            conn_class,
            format!("{ended} by the server, no GOAWAY read"),
            true,
        ),
    }
    for id in (0..streams).map(|n| 1 + 2 * n) {
        match answered.get(&id) {
            Some(outcome) => {
                let expected = outcome == "answered 400"
                    || outcome.starts_with("refused")
                    // A stream the client cancelled needs no answer.
                    || (rapid_reset && outcome.starts_with("reset"));
                soak.tally.add(class, outcome.clone(), expected);
            }
            None => match goaway {
                // Streams above GOAWAY's last id were never processed: the
                // client may retry them elsewhere (RFC 9113, 6.8).
                Some((last, _)) if id > last => {
                    soak.tally.add(class, "not processed (above GOAWAY)", true)
                }
                // ENHANCE_YOUR_CALM: h2's flood guard (too many refused or
                // reset streams) drops the connection and what it carried.
                Some((_, 11)) => soak.tally.add(
                    class,
                    "dropped with the connection (GOAWAY ENHANCE_YOUR_CALM)",
                    true,
                ),
                // The server ended the connection of a client that opened
                // streams past the advertised limit; the GOAWAY before the
                // reset can be lost with the unread bytes (TCP RST, and the
                // proxy closing both ends).
                None if !ended.is_empty() => soak.tally.add(
                    class,
                    format!("dropped with the connection ({ended} by the server)"),
                    true,
                ),
                _ if rapid_reset => {
                    soak.tally
                        .add(class, "cancelled by the client, no answer", true)
                }
                _ => soak.tally.add(class, "no answer", false),
            },
        }
    }
}

/// Opens connections straight at one replica, each sending one review so
/// that the first-request deadline does not close it, until the replica
/// refuses one; holds them a second while the valid load goes on, then
/// lets them go.
async fn cap_burst(soak: &Soak, replica: SocketAddr, cap: usize, report: &mut Report) {
    let connector = soak.tls(&[b"http/1.1"]);
    let held = Arc::new(Mutex::new(Vec::new()));
    let refusal: Arc<Mutex<Option<Duration>>> = Arc::default();
    let attempts = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (connector, held, refusal, attempts) = (
            connector.clone(),
            held.clone(),
            refusal.clone(),
            attempts.clone(),
        );
        workers.spawn(async move {
            while refusal.lock().expect("refusal").is_none()
                && attempts.fetch_add(1, Ordering::Relaxed) < cap + 256
                && started.elapsed() < Duration::from_secs(30)
            {
                let attempt = Instant::now();
                let Ok(mut tls) = wire::connect(&connector, replica).await else {
                    refusal
                        .lock()
                        .expect("refusal")
                        .get_or_insert(attempt.elapsed());
                    return;
                };
                let request = wire::http1_post("/mutate", REVIEW);
                if tls.write_all(&request).await.is_ok()
                    && wire::http1_response(&mut tls).await.is_ok()
                {
                    held.lock().expect("held").push(tls);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let refusal = *refusal.lock().expect("refusal");
    let held = std::mem::take(&mut *held.lock().expect("held"));
    report.line(format!(
        "cap burst on replica a: {} connections opened on top of the load in {:.1}s, then one refused after {:?}",
        held.len(),
        started.elapsed().as_secs_f64(),
        refusal.unwrap_or_default()
    ));
    report.goal(
        refusal.is_some_and(|t| t < Duration::from_millis(500)),
        "a connection beyond --max-connections is refused within 500ms",
    );
    soak.tally
        .add("cap burst (beyond the cap)", "refused", refusal.is_some());
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(held);
}
