//! The launcher rows: one exec of `/bin/true` through each launcher, the
//! in-process cost of building and applying the ruleset, and the file-open
//! tax under it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use landgate_policy::POLICY_ENV;

use crate::policy::Measured;
use crate::report::{Row, Table, micros};
use crate::stats::interleave;
use crate::{Config, Peer};

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

/// What one run prints on stdout, as a number. Its stderr (landgate's
/// status line) is shown only when it fails.
fn printed(cmd: &mut Command) -> Result<f64> {
    match printed_all(cmd)?.as_slice() {
        [n] => Ok(*n),
        all => bail!("{cmd:?} printed {} numbers, one expected", all.len()),
    }
}

fn landgate(config: &Config, policy: &str) -> Command {
    let mut cmd = Command::new(&config.launcher);
    cmd.args(["exec", "--"]).env(POLICY_ENV, policy);
    cmd
}

/// The floor's arguments for `measured`: the same paths, handled rights,
/// ports (the launcher's effective lists, bind's ephemeral 0 included),
/// scopes, io_uring choice and denial logging as the launcher applies.
fn floor_args(measured: &Measured) -> Vec<String> {
    let policy = &measured.policy;
    let mut args = Vec::new();
    for p in measured.rx() {
        args.extend(["-r".to_owned(), p]);
    }
    for p in measured.rw() {
        args.extend(["-w".to_owned(), p]);
    }
    for (handle, flag, ports) in [
        ("-B", "-b", policy.net.effective_bind()),
        ("-C", "-c", policy.net.effective_connect()),
    ] {
        if let Some(ports) = ports {
            args.push(handle.to_owned());
            for port in ports.iter() {
                args.extend([flag.to_owned(), port.get().to_string()]);
            }
        }
    }
    for (on, flag) in [
        (policy.scope.signal, "-s"),
        (policy.scope.abstract_unix_socket, "-a"),
        (policy.allow_io_uring, "-i"),
        (policy.log_denials, "-l"),
    ] {
        if on {
            args.push(flag.to_owned());
        }
    }
    args
}

fn joined(ports: &[u16], sep: &str) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

/// A peer's command running `program`, with rules equivalent to the
/// baseline policy where the peer can express them.
fn peer_command(name: &str, bin: &Path, program: &str, measured: &Measured) -> Command {
    let policy = &measured.policy;
    let mut cmd = Command::new(bin);
    match name {
        "sandboxer" => {
            let mut scoped = Vec::new();
            if policy.scope.abstract_unix_socket {
                scoped.push("a");
            }
            if policy.scope.signal {
                scoped.push("s");
            }
            cmd.env("LL_FS_RO", measured.rx().join(":"))
                .env("LL_FS_RW", measured.rw().join(":"))
                .env("LL_SCOPED", scoped.join(":"));
            // An unset variable leaves that access unhandled, as a `null`
            // list does; sandboxer adds no ephemeral port of its own.
            for (var, ports) in [
                ("LL_TCP_BIND", policy.net.effective_bind()),
                ("LL_TCP_CONNECT", policy.net.effective_connect()),
            ] {
                match ports {
                    Some(ports) => {
                        let ports: Vec<u16> = ports.iter().map(|p| p.get()).collect();
                        cmd.env(var, joined(&ports, ":"))
                    }
                    None => cmd.env_remove(var),
                };
            }
            cmd.arg(program);
        }
        "landrun" => {
            for p in measured.rx() {
                cmd.args(["--rox", &p]);
            }
            for p in measured.rw() {
                cmd.args(["--rw", &p]);
            }
            for port in measured.bind() {
                cmd.args(["--bind-tcp", &port.to_string()]);
            }
            for port in measured.connect() {
                cmd.args(["--connect-tcp", &port.to_string()]);
            }
            // It asks for ABI 9 unless told to take what the kernel has.
            cmd.args(["--best-effort", program]);
        }
        "nono" => {
            // `nono wrap` execs into the command, as landgate does. nono
            // refuses grants that contain its own state directory
            // ($HOME/.local/state/nono): an `fs.rx` of `/` becomes the
            // top-level system directories and writable paths under $HOME
            // are left out; it also needs its working directory granted.
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            let contains_state = |p: &str| Path::new(&home).starts_with(p);
            cmd.args(["wrap", "--silent"]).current_dir("/tmp");
            for p in measured.rx() {
                if contains_state(&p) {
                    for dir in [
                        "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt", "/srv",
                    ] {
                        cmd.args(["--read", dir]);
                    }
                } else {
                    cmd.args(["--read", &p]);
                }
            }
            for p in measured.rw().iter().filter(|p| !contains_state(p)) {
                cmd.args(["--allow", p]);
            }
            for port in measured.bind() {
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
    let measured = Measured::baseline()?;
    let mut names = vec![
        "/bin/true".to_owned(),
        "landgate".to_owned(),
        "floor".to_owned(),
    ];
    let mut commands = vec![
        quiet(Command::new("/bin/true")),
        quiet({
            let mut c = landgate(config, &measured.json);
            c.arg("/bin/true");
            c
        }),
        quiet({
            let mut c = Command::new(&config.floor);
            c.args(floor_args(&measured)).args(["--", "/bin/true"]);
            c
        }),
    ];
    let mut missing = Vec::new();
    for peer in &config.peers {
        match peer {
            Peer::Built { name, bin } => {
                let mut cmd = quiet(peer_command(name, bin, "/bin/true", &measured));
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
    // Every arm gets the policy variable, not only landgate's: once a
    // variable is set, std's Command builds a whole new environment for the
    // child, in the parent and inside the timed spawn, which would be
    // charged to landgate's arm alone.
    for cmd in &mut commands {
        cmd.env(POLICY_ENV, &measured.json);
    }
    // Warm the page cache and every binary once.
    for cmd in &mut commands {
        time(cmd)?;
    }
    // Two interleaved sets: /bin/true, landgate and the floor alone, then
    // /bin/true and landgate beside the peers. A peer's run (milliseconds,
    // several threads, mounts or namespaces) slows the runs that follow it
    // by more than the whole difference between landgate and the floor
    // (measured: /bin/true itself took 3× its time in such a rotation), so
    // the comparison the goal is about is kept away from them.
    let core = [0, 1, 2];
    let runs = interleave(core.len(), config.blocks, config.exec_reps, |arm| {
        time(&mut commands[core[arm]])
    })?;
    let peer_arms: Vec<usize> = [0, 1].into_iter().chain(3..commands.len()).collect();
    let peer_runs = if peer_arms.len() > 2 {
        interleave(peer_arms.len(), config.blocks, config.exec_reps, |arm| {
            time(&mut commands[peer_arms[arm]])
        })?
    } else {
        Vec::new()
    };
    let base = &runs[0];
    let (lg, floor) = (&runs[1], &runs[2]);
    table.section(&format!(
        "Launcher: one exec of /bin/true, median µs ({} blocks × {} runs, interleaved; the peers in a second interleaved set with /bin/true and landgate, their ratios from that set); policy: what the engine writes for a {} ({}): `{}`",
        config.blocks, config.exec_reps, measured.pod, measured.shape(), measured.json
    ));
    table.row(Row::new("`/bin/true` run directly (baseline)", micros(base.median())).ratio(1.0));
    let size = std::fs::metadata(&config.launcher)?.len();
    table.row(
        Row::new(
            &format!(
                "`landgate exec -- /bin/true`, the engine's policy (static musl, {:.1} KiB)",
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
            "physical floor (static C: same ruleset, seccomp filter and restrict flags, bare syscalls, execve)",
            micros(floor.median()),
        )
        .ratio(floor.ratio_to(base)),
    );
    for (j, &command) in peer_arms.iter().enumerate().skip(2) {
        let name = &names[command];
        let (run, peer_base, peer_lg) = (&peer_runs[j], &peer_runs[0], &peer_runs[1]);
        let what = match name.as_str() {
            "sandboxer" => "rust-landlock `sandboxer` example (same paths, ports and scopes)",
            "bwrap" => "`bwrap --ro-bind / / /bin/true`",
            "landrun" => {
                "`landrun --best-effort` (same paths and ports; it handles connect even with no connect port)"
            }
            "nono" => {
                "`nono wrap` (same writable paths but those holding its state under $HOME, system directories read-only instead of `/`, same listen ports)"
            }
            _ => name,
        };
        table.row(
            Row::new(what, micros(run.median()))
                .ratio(run.ratio_to(peer_base))
                .goal(&format!(
                    "landgate well ahead: this takes {:.2}× landgate's time",
                    run.ratio_to(peer_lg)
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

/// The numbers one run prints on stdout (`ruleset_timing` and `floor -t`:
/// nanoseconds). Its stderr is shown only when it fails.
fn printed_all(cmd: &mut Command) -> Result<Vec<f64>> {
    let out = cmd.output().with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .map(|n| {
            n.parse()
                .with_context(|| format!("{cmd:?} printed {text:?}"))
        })
        .collect()
}

pub fn in_process_rows(config: &Config, table: &mut Table) -> Result<()> {
    let measured = Measured::twenty_rules()?;
    let mut landgate = Command::new(&config.ruleset);
    landgate.arg(&measured.json);
    let mut floor = Command::new(&config.floor);
    floor.args(floor_args(&measured)).arg("-t");
    // Each run's parts, kept beside the interleaved totals: [landgate, floor].
    let mut parts: [Vec<Vec<f64>>; 2] = Default::default();
    let runs = interleave(2, config.blocks, config.exec_reps / 2, |arm| {
        let numbers = printed_all(if arm == 0 { &mut landgate } else { &mut floor })?;
        let us: Vec<f64> = numbers.iter().map(|ns| ns / 1000.0).collect();
        let total = us.first().copied().context("no figure printed")?;
        parts[arm].push(us);
        Ok(total)
    })?;
    let part = |arm: usize, i: usize| {
        let values: Vec<f64> = parts[arm]
            .iter()
            .filter_map(|p| p.get(i).copied())
            .collect();
        crate::stats::median(&values)
    };
    table.section(&format!(
        "Ruleset build + apply in process, {}, median µs; policy: what the engine writes for a {}: `{}`",
        measured.shape(),
        measured.pod,
        measured.json
    ));
    // floor: TOTAL PATHS LANDLOCK SECCOMP; landgate: TOTAL PARSE PLAN SECCOMP LANDLOCK.
    table.row(
        Row::new(
            "physical floor: open the paths, create, add the rules, seccomp, restrict (baseline)",
            micros(runs[1].median()),
        )
        .ratio(1.0)
        .note(&format!(
            "of which opening the paths {}, Landlock syscalls {}, seccomp attach {}",
            micros(part(1, 1)),
            micros(part(1, 2)),
            micros(part(1, 3))
        )),
    );
    table.row(
        Row::new(
            "landgate (its code as shipped: static musl, `launcher` profile): policy JSON → plan (paths opened) → seccomp → restrict_self",
            micros(runs[0].median()),
        )
        .ratio(runs[0].ratio_to(&runs[1]))
        .goal(&format!(
            "≤ 60 µs: {}; of which JSON parse {}, plan (ABI probe, paths opened) {}, seccomp attach {}, Landlock syscalls {}",
            if runs[0].median() <= 60.0 {
                "met"
            } else {
                "missed"
            },
            micros(part(0, 1)),
            micros(part(0, 2)),
            micros(part(0, 3)),
            micros(part(0, 4))
        )),
    );
    table.row(
        Row::new(
            "the same without the seccomp attach (kernel's BPF checks, JIT, per-syscall cache)",
            micros(runs[0].median() - part(0, 3)),
        )
        .note(&format!(
            "floor without it: {}",
            micros(runs[1].median() - part(1, 3))
        )),
    );
    Ok(())
}

pub fn open_tax_rows(config: &Config, table: &mut Table) -> Result<()> {
    let measured = Measured::baseline()?;
    // The micro loop: open + close of a file beneath an `fs.rx` rule,
    // timed inside the program (ns per pair): directly, under the floor's
    // ruleset (what the kernel charges for Landlock's path walk on open:
    // any domain handling LANDLOCK_ACCESS_FS_TRUNCATE walks it, truncation
    // being an optional access on every open), and under landgate's.
    let target = "/usr/bin/true";
    let loops = "20000";
    let mut direct = Command::new(&config.openloop);
    direct.args([target, loops]);
    let mut floor = Command::new(&config.floor);
    floor
        .args(floor_args(&measured))
        .arg("--")
        .arg(&config.openloop)
        .args([target, loops]);
    let mut sandboxed = landgate(config, &measured.json);
    sandboxed.arg(&config.openloop).args([target, loops]);
    let micro = interleave(3, config.blocks, 5, |arm| {
        printed(match arm {
            0 => &mut direct,
            1 => &mut floor,
            _ => &mut sandboxed,
        })
    })?;
    let tar_dir = "/usr/share";
    let mut tar_direct = quiet(Command::new("tar"));
    // The same environment as the sandboxed arm (see `exec_rows`).
    tar_direct
        .args(["-cf", "/dev/null", tar_dir])
        .env(POLICY_ENV, &measured.json);
    let mut tar_sandboxed = quiet(landgate(config, &measured.json));
    tar_sandboxed.args(["tar", "-cf", "/dev/null", tar_dir]);
    time(&mut tar_direct)?;
    let tar = interleave(2, config.blocks, 2, |arm| {
        time(if arm == 0 {
            &mut tar_direct
        } else {
            &mut tar_sandboxed
        })
    })?;
    table.section("File-open tax under the baseline pod's ruleset (the exec rows' policy)");
    table.row(
        Row::new(
            &format!("open + close `{target}`, direct (baseline), ns per pair"),
            format!("{:.0} ns", micro[0].median()),
        )
        .ratio(1.0),
    );
    table.row(
        Row::new(
            "the same under the physical floor's ruleset (the kernel's own tax)",
            format!("{:.0} ns", micro[1].median()),
        )
        .ratio(micro[1].ratio_to(&micro[0])),
    );
    let r = micro[2].ratio_to(&micro[0]);
    table.row(
        Row::new(
            "the same under `landgate exec`",
            format!("{:.0} ns", micro[2].median()),
        )
        .ratio(r)
        .goal(&format!(
            "≤ 1.3×: {}; {:.2}× the floor's",
            if r <= 1.3 { "met" } else { "missed" },
            micro[2].ratio_to(&micro[1])
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
            "the same under `landgate exec`",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor gets exactly what the engine's policy says: every path
    /// with its right, the launcher's effective port lists, and the
    /// policy's scopes, io_uring choice and denial logging.
    #[test]
    fn the_floor_and_the_peers_follow_the_measured_policy() {
        let measured = Measured::twenty_rules().unwrap();
        let args = floor_args(&measured);
        let pairs: Vec<(&str, &str)> = args
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        for p in measured.rx() {
            assert!(pairs.contains(&("-r", p.as_str())), "{p}: {args:?}");
        }
        for p in measured.rw() {
            assert!(pairs.contains(&("-w", p.as_str())), "{p}: {args:?}");
        }
        let bind: Vec<u16> = pairs
            .iter()
            .filter(|(f, _)| *f == "-b")
            .map(|(_, v)| v.parse().unwrap())
            .collect();
        assert_eq!(bind, [0, 8080, 8443, 9090]);
        assert!(args.iter().any(|a| a == "-B") && args.iter().any(|a| a == "-C"));
        let policy = &measured.policy;
        for (flag, on) in [
            ("-s", policy.scope.signal),
            ("-a", policy.scope.abstract_unix_socket),
            ("-i", policy.allow_io_uring),
            ("-l", policy.log_denials),
        ] {
            assert_eq!(args.iter().any(|a| a == flag), on, "{flag}: {args:?}");
        }
        let sandboxer = peer_command("sandboxer", Path::new("sandboxer"), "/bin/true", &measured);
        let env: Vec<_> = sandboxer.get_envs().collect();
        let rw = measured.rw().join(":");
        assert!(
            env.iter()
                .any(|(k, v)| *k == "LL_FS_RW" && *v == Some(rw.as_ref()))
        );
        assert!(
            env.iter()
                .any(|(k, v)| *k == "LL_TCP_CONNECT" && *v == Some("53:443:5432".as_ref()))
        );
    }
}
