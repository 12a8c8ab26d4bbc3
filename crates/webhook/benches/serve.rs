//! Load generator against the real server on loopback: AdmissionReviews over
//! TLS (HTTP/2, as the API server speaks to a URL webhook), bounded in count,
//! printing throughput and latency percentiles.
//!
//! cargo bench -p landgate-webhook --bench serve
//! LANDGATE_BENCH_REQUESTS=20000 LANDGATE_BENCH_CONCURRENCY=64 cargo bench ...
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use landgate_engine::settings::Settings;
use landgate_webhook::server::{self, ConnectionLimits, ServerConfig};
use landgate_webhook::tls;

const REVIEW: &str = include_str!("../../../tests/fixtures/admission/pod-create.json");

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --benches` runs this too: keep that a quick smoke run.
    let smoke = std::env::args().all(|a| a != "--bench");
    let requests = if smoke {
        50
    } else {
        env_number("LANDGATE_BENCH_REQUESTS", 5000)
    };
    let concurrency = env_number("LANDGATE_BENCH_CONCURRENCY", 32).max(1);

    tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert_files, ca_pem) = tls::write_dev_certs(dir.path()).expect("dev certs");
    let (listen, admin_listen) = (free_port(), free_port());
    let config = ServerConfig {
        listen,
        admin_listen,
        cert_files,
        max_body_bytes: 4 << 20,
        request_timeout: Duration::from_secs(3),
        shutdown_grace: Duration::from_secs(5),
        // The `serve` defaults.
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
    };

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(config, Settings::default(), async {
            let _ = stop_rx.await;
        }));
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .resolve("localhost", listen)
            .http2_prior_knowledge()
            .build()
            .expect("client");
        let url = format!("https://localhost:{}/mutate", listen.port());
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.post(&url).body(REVIEW).send().await.is_err() {
            assert!(Instant::now() < deadline, "server not up after 10s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, url, next) = (client.clone(), url.clone(), next.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                        let t = Instant::now();
                        let response = client.post(&url).body(REVIEW).send().await.expect("request");
                        assert_eq!(response.status(), 200);
                        let body = response.bytes().await.expect("body");
                        assert!(body.windows(9).any(|w| w == b"JSONPatch"), "review not mutated");
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(requests);
        for worker in workers {
            latencies.extend(worker.await.expect("worker"));
        }
        let elapsed = started.elapsed();
        latencies.sort_unstable();
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
        println!(
            "landgate /mutate over TLS (HTTP/2, 1-container pod): {} reviews, concurrency {concurrency}",
            latencies.len()
        );
        println!("  throughput  {:>10.0} reviews/s", latencies.len() as f64 / elapsed.as_secs_f64());
        println!("  latency p50 {:>10.0} µs", pct(0.50));
        println!("  latency p99 {:>10.0} µs", pct(0.99));
        println!("  latency max {:>10.0} µs", pct(1.0));

        let _ = stop_tx.send(());
        server.await.expect("server task").expect("server");
    });
}
