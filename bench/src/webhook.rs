//! The webhook rows: `/mutate` with a 10-container AdmissionReview against
//! `/echo` (the same binary, TLS and HTTP stack, no review), latency at
//! concurrency 1 and sustained throughput with the server and the client on
//! separate cores, new TLS connections, memory, cold start; and the engine
//! against a plain serde parse + serialise (criterion's `review` bench).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::Config;
use crate::report::{Row, Table, micros};
use crate::stats::{Blocks, interleave, quantile};

/// The server's core and the client's.
const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";
/// Streams (project client, one HTTP/2 connection) or connections (wrk)
/// in flight for the sustained rate.
const CONCURRENCY: usize = 32;

/// The Pod of the webhook's criterion benches (`benches/common`), with
/// `containers` containers: command, ports, mounts, env, an exec probe.
fn pod_json(containers: usize) -> Value {
    let containers: Vec<_> = (0..containers)
        .map(|i| {
            json!({
                "name": format!("app-{i}"),
                "image": "ghcr.io/example/app:1.0",
                "command": ["/app/bin/server"],
                "args": ["--listen", format!(":{}", 8000 + i)],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}
                ],
                "ports": [{"name": "http", "containerPort": 8000 + i}],
                "volumeMounts": [
                    {"name": "data", "mountPath": format!("/data/{i}")},
                    {"name": "conf", "mountPath": "/etc/app", "readOnly": true}
                ],
                "livenessProbe": {"exec": {"command": ["/app/bin/server", "health"]}}
            })
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bench", "namespace": "shop",
                     "annotations": {"landgate.dev/connect-ports": "53,443,5432"}},
        "spec": {
            "containers": containers,
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "app"}}
            ]
        }
    })
}

/// An AdmissionReview of a CREATE of that Pod.
pub fn review(containers: usize) -> Vec<u8> {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "bench",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "admin", "groups": ["system:authenticated"]},
            "object": pod_json(containers),
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    });
    serde_json::to_vec(&review).unwrap_or_default()
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running server, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `VmRSS` and `VmHWM` (peak), in KiB.
    fn memory(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc status"))?;
            Ok(line
                .split_whitespace()
                .nth(1)
                .context("malformed status line")?
                .parse()?)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

fn spawn_server(config: &Config, certs: &Path, pin: bool, port: u16) -> Result<Server> {
    let admin = free_port()?;
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", SERVER_CPU]).arg(&config.webhook);
        c
    } else {
        Command::new(&config.webhook)
    };
    cmd.args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin}"))
        .arg("--tls-cert")
        .arg(certs.join("tls.crt"))
        .arg("--tls-key")
        .arg(certs.join("tls.key"))
        .args(["--no-namespace-watch", "--no-events", "--no-resolve"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // One summary line per review, as in a cluster; not read here.
        .stderr(Stdio::null());
    let child = cmd.spawn().context("spawn the webhook")?;
    Ok(Server { child, port })
}

fn ca_certificate(certs: &Path) -> Result<reqwest::Certificate> {
    Ok(reqwest::Certificate::from_pem(&std::fs::read(
        certs.join("ca.crt"),
    )?)?)
}

/// Waits until the TLS listener answers a request; the time it took.
async fn wait_ready(client: &reqwest::Client, port: u16) -> Result<Duration> {
    let started = Instant::now();
    let url = format!("https://localhost:{port}/healthz");
    loop {
        if client.get(&url).send().await.is_ok() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("the webhook did not answer on {port} within 20 s");
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

fn tls_client(certs: &Path, port: u16) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca_certificate(certs)?)
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], port)))
        .build()?)
}

/// Dev certificates (a CA and a serving certificate for localhost), made
/// once by the webhook itself.
fn make_certs(config: &Config, dir: &Path, rt: &tokio::runtime::Runtime) -> Result<()> {
    if dir.join("tls.key").exists() {
        return Ok(());
    }
    let (port, admin) = (free_port()?, free_port()?);
    let mut child = Command::new(&config.webhook)
        .args(["serve", "--dev-certs", "--dev-certs-dir"])
        .arg(dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin}"))
        .args(["--no-namespace-watch", "--no-events", "--no-resolve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("ca.crt").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready = tls_client(dir, port).and_then(|c| rt.block_on(wait_ready(&c, port)));
    let _ = child.kill();
    let _ = child.wait();
    ready.map(drop)
}

/// One run of the project's load generator (`landgate-bench load`) on the
/// client core: what it printed.
#[derive(Debug, Clone, Copy)]
struct Load {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
}

fn own_load(
    mode: &str,
    port: u16,
    path: &str,
    body: &Path,
    certs: &Path,
    secs: f64,
) -> Result<Load> {
    let me = std::env::current_exe()?;
    let out = Command::new("taskset")
        .args(["-c", CLIENT_CPU])
        .arg(me)
        .args(["load", mode, &port.to_string(), path])
        .arg(body)
        .arg(certs.join("ca.crt"))
        .arg(secs.to_string())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("load generator failed: {}", out.status);
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(Load {
        rate: v["rate"].as_f64().context("rate")?,
        p50_us: v["p50_us"].as_f64().context("p50")?,
        p99_us: v["p99_us"].as_f64().context("p99")?,
    })
}

/// wrk (HTTP/1.1 over TLS, no certificate check) on the client core.
fn wrk(port: u16, path: &str, script: &Path, connections: usize, secs: f64) -> Result<Load> {
    let out = Command::new("taskset")
        .args(["-c", CLIENT_CPU, "wrk", "-t1"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", secs.ceil() as u64))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .stderr(Stdio::inherit())
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk: {text}");
    }
    let duration = |s: &str| -> Option<f64> {
        let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = num.parse().ok()?;
        Some(match unit {
            "us" => n,
            "ms" => n * 1e3,
            "s" => n * 1e6,
            _ => return None,
        })
    };
    let pct = |p: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p).map(str::trim))
            .and_then(duration)
            .with_context(|| format!("no {p} in wrk output: {text}"))
    };
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no rate in wrk output: {text}"))?;
    Ok(Load {
        rate,
        p50_us: pct("50%")?,
        p99_us: pct("99%")?,
    })
}

/// Medians of block figures, for `/mutate` (0) and `/echo` (1).
struct Pair {
    p50: [Blocks; 2],
    p99: [Blocks; 2],
    rate: [Blocks; 2],
}

impl Pair {
    fn new() -> Self {
        Self {
            p50: Default::default(),
            p99: Default::default(),
            rate: Default::default(),
        }
    }

    fn push(&mut self, arm: usize, load: Load) {
        self.p50[arm].0.push(load.p50_us);
        self.p99[arm].0.push(load.p99_us);
        self.rate[arm].0.push(load.rate);
    }
}

/// Measures the webhook rows; returns echo's sustained rate under wrk
/// (requests/s), for the ceiling [`criterion_rows`] derives from it.
pub fn rows(config: &Config, table: &mut Table) -> Result<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = config.work.join("webhook");
    std::fs::create_dir_all(&dir)?;
    let certs = dir.join("certs");
    make_certs(config, &certs, &rt).context("dev certificates")?;
    let body = dir.join("review-10.json");
    std::fs::write(&body, review(10))?;
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal f = io.open(\"{}\")\nwrk.body = f:read(\"*a\")\nf:close()\n",
            body.display()
        ),
    )?;

    // Cold start first, on an idle machine: process start until the TLS
    // listener answers, against starting the same binary for `--version`.
    let mut version = Command::new(&config.webhook);
    version.arg("--version").stdout(Stdio::null());
    let cold = interleave(2, config.blocks, 3, |arm| {
        if arm == 1 {
            let started = Instant::now();
            let status = version.status()?;
            if !status.success() {
                bail!("--version failed");
            }
            return Ok(started.elapsed().as_secs_f64() * 1e6);
        }
        let port = free_port()?;
        let client = tls_client(&certs, port)?;
        let started = Instant::now();
        let server = spawn_server(config, &certs, false, port)?;
        rt.block_on(wait_ready(&client, server.port))?;
        Ok(started.elapsed().as_secs_f64() * 1e6)
    })?;

    let server = spawn_server(config, &certs, true, free_port()?)?;
    let client = tls_client(&certs, server.port)?;
    rt.block_on(wait_ready(&client, server.port))?;
    // Check the review is answered with a patch before timing it.
    let answer = rt.block_on(async {
        client
            .post(format!("https://localhost:{}/mutate", server.port))
            .body(std::fs::read(&body)?)
            .send()
            .await?
            .text()
            .await
            .map_err(anyhow::Error::from)
    })?;
    if !answer.contains("\"patch\"") {
        bail!("the bench review was not mutated: {answer}");
    }
    std::thread::sleep(Duration::from_secs(1));
    let (idle_rss, _) = server.memory()?;

    let secs = config.webhook_secs;
    let paths = ["/mutate", "/echo"];
    let (mut own_c1, mut own_sustained, mut wrk_c1, mut wrk_sustained, mut conns) = (
        Pair::new(),
        Pair::new(),
        Pair::new(),
        Pair::new(),
        Pair::new(),
    );
    for block in 0..config.blocks {
        for k in 0..2 {
            let arm = (k + block) % 2;
            let path = paths[arm];
            own_c1.push(arm, own_load("c1", server.port, path, &body, &certs, secs)?);
            own_sustained.push(
                arm,
                own_load("sustained", server.port, path, &body, &certs, secs)?,
            );
            wrk_c1.push(arm, wrk(server.port, path, &script, 1, secs)?);
            wrk_sustained.push(arm, wrk(server.port, path, &script, CONCURRENCY, secs)?);
            conns.push(
                arm,
                own_load("connections", server.port, path, &body, &certs, secs)?,
            );
        }
    }
    let (after_load_rss, peak_rss) = server.memory()?;
    std::thread::sleep(Duration::from_secs(config.settle_secs));
    let (settled_rss, _) = server.memory()?;
    drop(server);

    table.section(&format!(
        "Webhook `/mutate`, 10-container AdmissionReview over TLS, server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}; baseline: `/echo` (same binary and TLS, no review); {} blocks × {secs} s per run",
        config.blocks
    ));
    let lat = |name: &str, pair: &Pair, goal: bool| {
        let p99 = pair.p99[0].median();
        let r = Row::new(
            name,
            format!("{} / {}", micros(pair.p50[0].median()), micros(p99)),
        )
        .ratio(pair.p99[0].ratio_to(&pair.p99[1]))
        .note(&format!(
            "echo {} / {}; ratio of p99",
            micros(pair.p50[1].median()),
            micros(pair.p99[1].median())
        ));
        if goal {
            r.goal(&format!(
                "p99 ≤ 1 ms: {}",
                if p99 <= 1000.0 { "met" } else { "missed" }
            ))
        } else {
            r
        }
    };
    table.row(lat(
        "p50 / p99 at concurrency 1, project client (HTTP/2)",
        &own_c1,
        true,
    ));
    table.row(lat(
        "p50 / p99 at concurrency 1, wrk (HTTP/1.1)",
        &wrk_c1,
        true,
    ));
    let rate = |name: &str, pair: &Pair, unit: &str, goal: bool| {
        let r = pair.rate[0].ratio_to(&pair.rate[1]);
        let v = pair.rate[0].median();
        let row = Row::new(name, format!("{v:.0} {unit}"))
            .ratio(r)
            .note(&format!("echo {:.0} {unit}", pair.rate[1].median()));
        if goal {
            row.goal(&format!(
                "≥ 10,000/s and ≥ 0.5× echo: {}",
                if v >= 10_000.0 && r >= 0.5 {
                    "met"
                } else {
                    "missed"
                }
            ))
        } else {
            row
        }
    };
    table.row(rate(
        &format!("sustained, project client ({CONCURRENCY} HTTP/2 streams on one connection)"),
        &own_sustained,
        "reviews/s",
        true,
    ));
    table.row(rate(
        &format!("sustained, wrk ({CONCURRENCY} HTTP/1.1 connections)"),
        &wrk_sustained,
        "reviews/s",
        true,
    ));
    table.row(rate(
        "new TLS connections (full handshake, no resumption, + one request), 8 at a time",
        &conns,
        "conn/s",
        false,
    ));
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    table.row(
        Row::new("RSS idle (started, one review answered)", mib(idle_rss)).goal(&format!(
            "≤ 15 MiB: {}",
            if idle_rss <= 15 * 1024 {
                "met"
            } else {
                "missed"
            }
        )),
    );
    table.row(
        Row::new("RSS peak under load (VmHWM)", mib(peak_rss))
            .ratio(peak_rss as f64 / idle_rss as f64)
            .goal(&format!(
                "≤ 40 MiB: {}; ratio to idle",
                if peak_rss <= 40 * 1024 {
                    "met"
                } else {
                    "missed"
                }
            ))
            .note(&format!("{} right after the load", mib(after_load_rss))),
    );
    table.row(
        Row::new(
            &format!("RSS {} s after the load stops", config.settle_secs),
            mib(settled_rss),
        )
        .ratio(settled_rss as f64 / idle_rss as f64)
        .goal("back near idle; ratio to idle"),
    );
    let c = cold[0].median();
    table.row(
        Row::new(
            "cold start: process start → TLS listener answers",
            micros(c),
        )
        .ratio(cold[0].ratio_to(&cold[1]))
        .goal(&format!(
            "≤ 50 ms: {}; baseline: the same binary run for `--version` ({})",
            if c <= 50_000.0 { "met" } else { "missed" },
            micros(cold[1].median())
        )),
    );
    Ok(wrk_sustained.rate[1].median())
}

/// The engine against plain serde, from criterion's `review` bench output,
/// and from `echo` (echo's sustained requests/s on the server's core) the
/// most a server could sustain if a review cost only that plain serde work.
pub fn criterion_rows(file: &Path, echo: f64, table: &mut Table) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("criterion output {}", file.display()))?;
    let estimate = |id: &str| -> Result<f64> {
        let at = text
            .find(&format!("{id}\n"))
            .or_else(|| text.find(&format!("{id} ")))
            .with_context(|| format!("{id} not in {}", file.display()))?;
        let rest = &text[at..];
        let inside = rest
            .split_once("time:")
            .and_then(|(_, t)| t.split_once('['))
            .and_then(|(_, t)| t.split_once(']'))
            .map(|(t, _)| t)
            .context("no time: [..] line")?;
        let parts: Vec<&str> = inside.split_whitespace().collect();
        let (value, unit) = (
            parts.get(2).context("estimate")?,
            parts.get(3).context("unit")?,
        );
        let v: f64 = value.parse()?;
        Ok(match *unit {
            "ns" => v / 1000.0,
            "µs" | "us" => v,
            "ms" => v * 1000.0,
            "s" => v * 1e6,
            other => bail!("unit {other}"),
        })
    };
    let serde = estimate("review/serde_typed_pod/10")?;
    let landgate = estimate("review/landgate/10")?;
    table.section("Engine alone, 10-container review, bytes in → bytes out (criterion `review` bench, its own estimate)");
    table.row(
        Row::new(
            "plain serde: parse the AdmissionReview<Pod> + serialise it (baseline)",
            micros(serde),
        )
        .ratio(1.0),
    );
    table.row(
        Row::new(
            "landgate: the whole review (parse, engine, patch, response)",
            micros(landgate),
        )
        .ratio(landgate / serde),
    );
    // One core's time per request: echo's (TLS, HTTP, reading the body,
    // writing one back) plus the plain serde work, and nothing else.
    let ceiling = 1e6 / (1e6 / echo + serde);
    let within = ceiling >= 10_000.0 && ceiling >= 0.5 * echo;
    table.row(
        Row::new(
            "ceiling: a server whose review were only the plain serde parse + serialise (echo's time per request + the baseline's)",
            format!("{ceiling:.0} reviews/s"),
        )
        .goal(&format!(
            "{:.2}× echo ({echo:.0}/s, wrk sustained): the sustained goal (≥ 10,000/s and ≥ 0.5× echo) is {} this",
            ceiling / echo,
            if within { "within" } else { "beyond even" }
        )),
    );
    Ok(())
}

/// `landgate-bench load MODE PORT PATH BODY CA SECS`: the project's load
/// generator. Prints `{"rate":..,"p50_us":..,"p99_us":..}`.
///
/// - `c1`: one request at a time on one HTTP/2 connection;
/// - `sustained`: [`CONCURRENCY`] streams on one HTTP/2 connection (how the
///   API server reaches a webhook);
/// - `connections`: 8 at a time, each request on a new TLS connection with
///   a full handshake (no session resumption).
pub fn load(args: &[String]) -> Result<()> {
    let [mode, port, path, body, ca, secs] = args else {
        bail!("usage: landgate-bench load MODE PORT PATH BODY CA SECS");
    };
    let port: u16 = port.parse()?;
    let secs: f64 = secs.parse()?;
    let body = bytes(std::fs::read(body)?);
    let ca = std::fs::read(ca)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = format!("https://localhost:{port}{path}");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (client, tasks) = match mode.as_str() {
        "c1" | "sustained" => (
            reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
                .resolve("localhost", addr)
                .http2_prior_knowledge()
                .build()?,
            if mode == "c1" { 1 } else { CONCURRENCY },
        ),
        "connections" => (
            reqwest::Client::builder()
                .use_preconfigured_tls(no_resumption(&ca)?)
                .resolve("localhost", addr)
                .http1_only()
                .pool_max_idle_per_host(0)
                .build()?,
            8,
        ),
        other => bail!("unknown mode {other}"),
    };
    let (rate, latencies) = rt.block_on(async move {
        // Warm-up: the connection, the server's first allocations.
        for _ in 0..20 {
            request(&client, &url, &body).await?;
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(secs);
        let mut workers = Vec::new();
        for _ in 0..tasks {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    request(&client, &url, &body).await?;
                    latencies.push(t.elapsed().as_secs_f64() * 1e6);
                }
                Ok::<_, anyhow::Error>(latencies)
            }));
        }
        let mut latencies = Vec::new();
        for w in workers {
            latencies.extend(w.await??);
        }
        let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
        Ok::<_, anyhow::Error>((rate, latencies))
    })?;
    println!(
        "{}",
        json!({
            "rate": rate,
            "p50_us": quantile(&latencies, 0.50),
            "p99_us": quantile(&latencies, 0.99),
        })
    );
    Ok(())
}

fn bytes(v: Vec<u8>) -> Arc<Vec<u8>> {
    Arc::new(v)
}

async fn request(client: &reqwest::Client, url: &str, body: &Arc<Vec<u8>>) -> Result<()> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.as_ref().clone())
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.status());
    }
    response.bytes().await?;
    Ok(())
}

/// A rustls client trusting `ca_pem`, with session resumption off (every
/// connection a full handshake) and HTTP/1.1 only.
fn no_resumption(ca_pem: &[u8]) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
