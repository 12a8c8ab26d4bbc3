//! `just bench`: landgate beside its peers and the physical floor, in one
//! interleaved run; prints one table and writes `bench/results.md`.
//!
//! The recipe builds what is measured and passes it in the environment:
//! `LANDGATE_BENCH_LAUNCHER` (the static musl `landgate`),
//! `LANDGATE_BENCH_FLOOR` and `LANDGATE_BENCH_OPENLOOP` (bench/floor/),
//! `LANDGATE_BENCH_RULESET` (the launcher's `ruleset_timing` example, built
//! like the launcher),
//! `LANDGATE_BENCH_WEBHOOK` (built with `bench-echo`),
//! `LANDGATE_BENCH_PEERS` (`name=path` or `name=!why it is missing`,
//! comma-separated), `LANDGATE_BENCH_CRITERION` (the `review` bench's
//! output), `LANDGATE_BENCH_OUT` (the results file). `LANDGATE_BENCH_BLOCKS`
//! (default 5), `LANDGATE_BENCH_SECS` (seconds per webhook run, default 2)
//! and `LANDGATE_BENCH_SETTLE` (seconds before the last RSS reading,
//! default 60) shorten or lengthen it.
//!
//! Sub-command used by the run itself: `load ...` (the project's load
//! generator, see [`webhook::load`]). Figures print; nothing
//! here fails on a missed goal.

mod launcher;
mod policy;
mod report;
mod stats;
mod webhook;

use std::path::PathBuf;

use anyhow::{Context, Result};

use report::Table;

pub enum Peer {
    Built { name: String, bin: PathBuf },
    Missing { name: String, why: String },
}

pub struct Config {
    launcher: PathBuf,
    floor: PathBuf,
    openloop: PathBuf,
    ruleset: PathBuf,
    webhook: PathBuf,
    peers: Vec<Peer>,
    criterion: Option<PathBuf>,
    out: PathBuf,
    work: PathBuf,
    blocks: usize,
    exec_reps: usize,
    webhook_secs: f64,
    settle_secs: u64,
}

fn env_path(name: &str) -> Result<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .with_context(|| format!("{name} is not set: run the benchmarks with `just bench`"))
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Config {
    fn from_env() -> Result<Self> {
        let peers = std::env::var("LANDGATE_BENCH_PEERS")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|entry| {
                let (name, value) = entry.split_once('=').unwrap_or((entry, "!not given"));
                match value.strip_prefix('!') {
                    Some(why) => Peer::Missing {
                        name: name.to_owned(),
                        why: why.to_owned(),
                    },
                    None => Peer::Built {
                        name: name.to_owned(),
                        bin: PathBuf::from(value),
                    },
                }
            })
            .collect();
        let out = env_path("LANDGATE_BENCH_OUT")?;
        let work = std::env::temp_dir().join(format!("landgate-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        Ok(Self {
            launcher: env_path("LANDGATE_BENCH_LAUNCHER")?,
            floor: env_path("LANDGATE_BENCH_FLOOR")?,
            openloop: env_path("LANDGATE_BENCH_OPENLOOP")?,
            ruleset: env_path("LANDGATE_BENCH_RULESET")?,
            webhook: env_path("LANDGATE_BENCH_WEBHOOK")?,
            peers,
            criterion: std::env::var_os("LANDGATE_BENCH_CRITERION").map(PathBuf::from),
            out,
            work,
            blocks: env_number("LANDGATE_BENCH_BLOCKS", 5usize).max(5),
            exec_reps: env_number("LANDGATE_BENCH_EXEC_RUNS", 40usize).max(4),
            webhook_secs: env_number("LANDGATE_BENCH_SECS", 2.0),
            settle_secs: env_number("LANDGATE_BENCH_SETTLE", 60),
        })
    }
}

/// Cores, CPU, kernel and Landlock ABI, for the table's heading.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cores} cores ({model}), Linux {}, Landlock {}, load average at start {}",
        landgate_launcher::kernel::release(),
        landgate_launcher::kernel::LandlockSupport::detect(),
        load.join(" ")
    )
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("load") {
        return webhook::load(&args[1..]);
    }
    let only: Vec<&str> = args.iter().map(String::as_str).collect();
    let wants = |part: &str| only.is_empty() || only.contains(&part);
    let config = Config::from_env()?;
    launcher::require(&config.launcher, "the launcher")?;
    let started = std::time::Instant::now();
    let machine = machine();
    println!("machine: {machine}");
    let mut table = Table::default();
    if wants("launcher") {
        launcher::exec_rows(&config, &mut table)?;
        launcher::in_process_rows(&config, &mut table)?;
        launcher::open_tax_rows(&config, &mut table)?;
    }
    if wants("webhook") {
        let echo_rate = webhook::rows(&config, &mut table)?;
        if let Some(file) = config.criterion.as_ref().filter(|f| f.exists()) {
            webhook::criterion_rows(file, echo_rate, &mut table)?;
        }
    }
    let _ = std::fs::remove_dir_all(&config.work);
    let results = format!(
        "# landgate benchmarks\n\nProduced by `just bench` ({}); {:.0} s.\n\nMachine: {machine}.\n\nEach figure is a median over interleaved runs ({} blocks; every arm runs in every block, in rotating order); each ratio is the median of the per-block ratios to the section's baseline, measured in the same run.\n{}",
        std::env::var("LANDGATE_BENCH_DATE").unwrap_or_default(),
        started.elapsed().as_secs_f64(),
        config.blocks,
        table.markdown()
    );
    std::fs::write(&config.out, results)
        .with_context(|| format!("write {}", config.out.display()))?;
    println!("\nwritten to {}", config.out.display());
    Ok(())
}
