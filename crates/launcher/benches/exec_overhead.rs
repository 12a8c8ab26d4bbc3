//! Per-exec overhead of `landgate exec -- /bin/true` under the baseline
//! profile's policy, against `/bin/true` alone.
//!
//! ```text
//! cargo bench -p landgate-launcher --bench exec_overhead
//! LANDGATE_BENCH_BIN=target/x86_64-unknown-linux-musl/launcher/landgate \
//!   LANDGATE_BENCH_RUNS=2000 cargo bench -p landgate-launcher --bench exec_overhead
//! ```
//!
//! Runs are interleaved (one of each per round) so that machine noise hits
//! both sides alike; the medians are compared. Under `cargo test` (no
//! `--bench` argument) it only does a few rounds as a smoke test.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BASELINE_POLICY: &str = r#"{"v":1,"enforcement":"best-effort","fs":{"rx":["/"],"rw":["/tmp","/var/tmp","/dev","/dev/shm","/proc","/run","/var/run","/var/cache","/var/log","/var/lib","/home","/root"]},"net":{"bind":[8080],"connect":null},"scope":{"signal":true,"abstract_unix_socket":true},"quiet":true}"#;

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let bin = std::env::var_os("LANDGATE_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_landgate")));
    let runs: usize = std::env::var("LANDGATE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 1000 } else { 5 });
    let warmup = if benching { 50 } else { 1 };

    let mut plain = Command::new("/bin/true");
    let mut sandboxed = Command::new(&bin);
    sandboxed
        .args(["exec", "--", "/bin/true"])
        .env("LANDGATE_POLICY", BASELINE_POLICY);
    for cmd in [&mut plain, &mut sandboxed] {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }

    let mut t_plain = Vec::with_capacity(runs);
    let mut t_sandboxed = Vec::with_capacity(runs);
    for round in 0..warmup + runs {
        let a = time(&mut plain);
        let b = time(&mut sandboxed);
        if round >= warmup {
            t_plain.push(a);
            t_sandboxed.push(b);
        }
    }

    let (p, s) = (median(&mut t_plain), median(&mut t_sandboxed));
    let overhead = s.as_secs_f64() - p.as_secs_f64();
    println!(
        "landgate exec overhead ({runs} runs each, medians, {})",
        bin.display()
    );
    println!("  /bin/true                       {:>9.1} µs", micros(p));
    println!("  landgate exec -- /bin/true      {:>9.1} µs", micros(s));
    println!(
        "  overhead per exec               {:>9.1} µs  (ratio {:.2}x)",
        overhead * 1e6,
        s.as_secs_f64() / p.as_secs_f64()
    );
    println!(
        "  means: {:.1} µs vs {:.1} µs",
        micros(mean(&t_plain)),
        micros(mean(&t_sandboxed))
    );
}

fn time(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let status = cmd.status().expect("spawn");
    let elapsed = start.elapsed();
    assert!(status.success(), "{cmd:?} failed: {status}");
    elapsed
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len() as u32
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
