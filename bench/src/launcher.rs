//! The launcher rows: one exec of `/bin/true` through each launcher, the
//! in-process cost of building and applying the ruleset, and the file-open
//! tax under it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::report::{Row, Table, micros};
use crate::stats::interleave;
use crate::{Config, Peer};

/// The policy the webhook writes for a baseline pod with three container
/// ports (`baseline` profile, writable root filesystem).
pub const BASELINE_POLICY: &str = r#"{"v":1,"enforcement":"best-effort","fs":{"rx":["/"],"rw":["/tmp","/var/tmp","/dev","/dev/shm","/proc","/run","/var/run","/var/cache","/var/log","/var/lib","/home","/root"]},"net":{"bind":[8080,8443,9090],"connect":null},"scope":{"signal":true,"abstract_unix_socket":true},"quiet":true}"#;

/// The same with three connect ports: 20 rules (13 paths, 4 bind ports with
/// the ephemeral 0, 3 connect ports).
pub const TWENTY_RULES_POLICY: &str = r#"{"v":1,"enforcement":"best-effort","fs":{"rx":["/"],"rw":["/tmp","/var/tmp","/dev","/dev/shm","/proc","/run","/var/run","/var/cache","/var/log","/var/lib","/home","/root"]},"net":{"bind":[8080,8443,9090],"connect":[53,443,5432]},"scope":{"signal":true,"abstract_unix_socket":true},"quiet":true}"#;

const RX: &[&str] = &["/"];
const RW: &[&str] = &[
    "/tmp",
    "/var/tmp",
    "/dev",
    "/dev/shm",
    "/proc",
    "/run",
    "/var/run",
    "/var/cache",
    "/var/log",
    "/var/lib",
    "/home",
    "/root",
];
const BIND: &[u16] = &[8080, 8443, 9090];
const CONNECT: &[u16] = &[53, 443, 5432];

fn quiet(mut cmd: Command) -> Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Wall time of one run, in µs; a failed run is an error naming it.
fn time(cmd: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let status = cmd.status().with_context(|| format!("spawn {cmd:?}"))?;
    let elapsed = start.elapsed();
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(elapsed.as_secs_f64() * 1e6)
}

/// What one run prints on stdout, as a number.
fn printed(cmd: &mut Command) -> Result<f64> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("{cmd:?} printed {text:?}"))
}

fn landgate(config: &Config, policy: &str) -> Command {
    let mut cmd = Command::new(&config.launcher);
    cmd.args(["exec", "--"]).env("LANDGATE_POLICY", policy);
    cmd
}

fn floor_args(connect: bool) -> Vec<String> {
    let mut args = Vec::new();
    for p in RX {
        args.extend(["-r".to_owned(), (*p).to_owned()]);
    }
    for p in RW {
        args.extend(["-w".to_owned(), (*p).to_owned()]);
    }
    for port in BIND {
        args.extend(["-b".to_owned(), port.to_string()]);
    }
    if connect {
        for port in CONNECT {
            args.extend(["-c".to_owned(), port.to_string()]);
        }
    }
    args
}

/// A peer's command running `program`, with rules equivalent to the
/// baseline policy where the peer can express them.
fn peer_command(name: &str, bin: &Path, program: &str) -> Command {
    let mut cmd = Command::new(bin);
    match name {
        "sandboxer" => {
            cmd.env("LL_FS_RO", RX.join(":"))
                .env("LL_FS_RW", RW.join(":"))
                .env(
                    "LL_TCP_BIND",
                    BIND.iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(":"),
                )
                .env_remove("LL_TCP_CONNECT")
                .env("LL_SCOPED", "a:s")
                .arg(program);
        }
        "landrun" => {
            for p in RX {
                cmd.args(["--rox", p]);
            }
            for p in RW {
                cmd.args(["--rw", p]);
            }
            for port in BIND {
                cmd.args(["--bind-tcp", &port.to_string()]);
            }
            // It asks for ABI 9 unless told to take what the kernel has.
            cmd.args(["--best-effort", program]);
        }
        "nono" => {
            // `nono wrap` execs into the command, as landgate does. nono
            // refuses grants that contain its own state directory
            // ($HOME/.local/state/nono): `/` and `/root` become the
            // top-level system directories, read-only; it also needs its
            // working directory granted.
            cmd.args(["wrap", "--silent"]).current_dir("/tmp");
            for p in [
                "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt", "/srv",
            ] {
                cmd.args(["--read", p]);
            }
            for p in RW.iter().filter(|p| **p != "/root") {
                cmd.args(["--allow", p]);
            }
            for port in BIND {
                cmd.args(["--listen-port", &port.to_string()]);
            }
            cmd.args(["--", program]);
        }
        "bwrap" => {
            cmd.args(["--ro-bind", "/", "/", program]);
        }
        other => unreachable!("unknown peer {other}"),
    }
    cmd
}

pub fn exec_rows(config: &Config, table: &mut Table) -> Result<()> {
    let mut names = vec![
        "/bin/true".to_owned(),
        "landgate".to_owned(),
        "floor".to_owned(),
    ];
    let mut commands = vec![
        quiet(Command::new("/bin/true")),
        quiet({
            let mut c = landgate(config, BASELINE_POLICY);
            c.arg("/bin/true");
            c
        }),
        quiet({
            let mut c = Command::new(&config.floor);
            c.args(floor_args(false)).args(["--", "/bin/true"]);
            c
        }),
    ];
    let mut missing = Vec::new();
    for peer in &config.peers {
        match peer {
            Peer::Built { name, bin } => {
                let mut cmd = quiet(peer_command(name, bin, "/bin/true"));
                // A peer that cannot run here is a row that says so.
                match cmd.status() {
                    Ok(s) if s.success() => {
                        names.push(name.clone());
                        commands.push(cmd);
                    }
                    Ok(s) => missing.push((name.clone(), format!("`{cmd:?}` fails here: {s}"))),
                    Err(e) => missing.push((name.clone(), format!("cannot spawn: {e}"))),
                }
            }
            Peer::Missing { name, why } => missing.push((name.clone(), why.clone())),
        }
    }
    // Warm the page cache and every binary once.
    for cmd in &mut commands {
        time(cmd)?;
    }
    let runs = interleave(commands.len(), config.blocks, config.exec_reps, |arm| {
        time(&mut commands[arm])
    })?;
    let base = &runs[0];
    let (lg, floor) = (&runs[1], &runs[2]);
    table.section(&format!(
        "Launcher: one exec of /bin/true, median µs ({} blocks × {} runs, interleaved)",
        config.blocks, config.exec_reps
    ));
    table.row(Row::new("`/bin/true` run directly (baseline)", micros(base.median())).ratio(1.0));
    let size = std::fs::metadata(&config.launcher)?.len();
    table.row(
        Row::new(
            &format!(
                "`landgate exec -- /bin/true`, 3-port baseline policy (static musl, {:.1} KiB)",
                size as f64 / 1024.0
            ),
            micros(lg.median()),
        )
        .ratio(lg.ratio_to(base))
        .goal(&format!(
            "≤ 1.1× the floor: {:.2}× its time, {:.2}× its overhead over `/bin/true`",
            lg.ratio_to(floor),
            lg.overhead_ratio(floor, base)
        )),
    );
    table.row(
        Row::new(
            "physical floor (static C: same ruleset and seccomp filter, bare syscalls, execve)",
            micros(floor.median()),
        )
        .ratio(floor.ratio_to(base)),
    );
    for (i, name) in names.iter().enumerate().skip(3) {
        let what = match name.as_str() {
            "sandboxer" => "rust-landlock `sandboxer` example (same rules)",
            "bwrap" => "`bwrap --ro-bind / / /bin/true`",
            "landrun" => {
                "`landrun --best-effort` (same paths and bind ports; it also restricts connect)"
            }
            "nono" => {
                "`nono wrap` (same writable paths but `/root`, system directories read-only instead of `/`, same listen ports)"
            }
            _ => name,
        };
        table.row(
            Row::new(what, micros(runs[i].median()))
                .ratio(runs[i].ratio_to(base))
                .goal(&format!(
                    "landgate well ahead: this takes {:.2}× landgate's time",
                    runs[i].ratio_to(lg)
                )),
        );
    }
    for (name, why) in missing {
        table.row(Row::new(&format!("`{name}`"), "not measured".to_owned()).note(&why));
    }
    table.row(
        Row::new(
            "landgate binary size (static musl, stripped)",
            format!("{size} B ({:.1} KiB)", size as f64 / 1024.0),
        )
        .goal(&format!(
            "≤ 512 KiB: {}",
            if size <= 512 * 1024 { "met" } else { "missed" }
        )),
    );
    Ok(())
}

/// `landgate-bench ruleset POLICY`: one in-process build and apply of the
/// policy through the launcher's own code (parse, plan, seccomp, Landlock),
/// printed in nanoseconds. The process is restricted afterwards: one sample
/// per process.
pub fn ruleset_child(policy: &str) -> Result<()> {
    use landgate_launcher::kernel::LandlockSupport;
    use landgate_launcher::ruleset::{Plan, Status};
    let start = Instant::now();
    let policy = landgate_policy::Policy::from_json(policy)?;
    let plan = Plan::new(&policy, LandlockSupport::detect())?;
    let assessment = plan.apply()?;
    let elapsed = start.elapsed();
    if assessment.status != Status::FullyEnforced {
        bail!("not fully enforced: {}", assessment.summary());
    }
    println!("{}", elapsed.as_nanos());
    Ok(())
}

pub fn in_process_rows(config: &Config, table: &mut Table) -> Result<()> {
    let me = std::env::current_exe()?;
    let mut landgate = Command::new(&me);
    landgate.args(["ruleset", TWENTY_RULES_POLICY]);
    let mut floor = Command::new(&config.floor);
    floor.args(floor_args(true)).arg("-t");
    let runs = interleave(2, config.blocks, config.exec_reps / 2, |arm| {
        let ns = printed(if arm == 0 { &mut landgate } else { &mut floor })?;
        Ok(ns / 1000.0)
    })?;
    table.section("Ruleset build + apply in process, 20 rules (13 paths, 7 ports), median µs");
    table.row(
        Row::new(
            "physical floor: open the paths, create, add 20 rules, seccomp, restrict (baseline)",
            micros(runs[1].median()),
        )
        .ratio(1.0),
    );
    table.row(
        Row::new(
            "landgate: policy JSON → plan (paths opened) → seccomp → restrict_self",
            micros(runs[0].median()),
        )
        .ratio(runs[0].ratio_to(&runs[1]))
        .goal(&format!(
            "≤ 60 µs: {}",
            if runs[0].median() <= 60.0 {
                "met"
            } else {
                "missed"
            }
        )),
    );
    Ok(())
}

pub fn open_tax_rows(config: &Config, table: &mut Table) -> Result<()> {
    // The micro loop: open + close of a file beneath an `fs.rx` rule,
    // timed inside the program (ns per pair).
    let target = "/usr/bin/true";
    let loops = "20000";
    let mut direct = Command::new(&config.openloop);
    direct.args([target, loops]);
    let mut sandboxed = landgate(config, BASELINE_POLICY);
    sandboxed.arg(&config.openloop).args([target, loops]);
    let micro = interleave(2, config.blocks, 5, |arm| {
        printed(if arm == 0 {
            &mut direct
        } else {
            &mut sandboxed
        })
    })?;
    let tar_dir = "/usr/share";
    let mut tar_direct = quiet(Command::new("tar"));
    tar_direct.args(["-cf", "/dev/null", tar_dir]);
    let mut tar_sandboxed = quiet(landgate(config, BASELINE_POLICY));
    tar_sandboxed.args(["tar", "-cf", "/dev/null", tar_dir]);
    time(&mut tar_direct)?;
    let tar = interleave(2, config.blocks, 2, |arm| {
        time(if arm == 0 {
            &mut tar_direct
        } else {
            &mut tar_sandboxed
        })
    })?;
    table.section("File-open tax under the baseline ruleset");
    table.row(
        Row::new(
            &format!("open + close `{target}`, direct (baseline), ns per pair"),
            format!("{:.0} ns", micro[0].median()),
        )
        .ratio(1.0),
    );
    let r = micro[1].ratio_to(&micro[0]);
    table.row(
        Row::new(
            "the same under `landgate exec` (baseline policy)",
            format!("{:.0} ns", micro[1].median()),
        )
        .ratio(r)
        .goal(&format!(
            "≤ 1.3×: {}",
            if r <= 1.3 { "met" } else { "missed" }
        )),
    );
    table.row(
        Row::new(
            &format!("`tar -cf /dev/null {tar_dir}`, direct (baseline)"),
            format!("{:.1} ms", tar[0].median() / 1000.0),
        )
        .ratio(1.0),
    );
    let r = tar[1].ratio_to(&tar[0]);
    table.row(
        Row::new(
            "the same under `landgate exec` (baseline policy)",
            format!("{:.1} ms", tar[1].median() / 1000.0),
        )
        .ratio(r)
        .goal(&format!(
            "≤ 1.05×: {}",
            if r <= 1.05 { "met" } else { "missed" }
        )),
    );
    Ok(())
}

/// A binary next to the others, for error messages.
pub fn require(path: &Path, what: &str) -> Result<PathBuf> {
    if !path.exists() {
        bail!(
            "{what} not found at {} (run it through `just bench`)",
            path.display()
        );
    }
    Ok(path.to_owned())
}
