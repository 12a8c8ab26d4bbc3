//! parse → policy → ruleset → restrict → exec: the launcher's one flow, for
//! `exec`, `check` and wrapper mode alike.

use std::env;
use std::ffi::{OsStr, OsString};

use landgate_policy::env::ACTIVE as ACTIVE_ENV;
use landgate_policy::{Enforcement, Policy};

use crate::cli::{self, Invocation, PolicySource, USAGE, WRAPPERS_ENV};
use crate::error::LaunchError;
use crate::exec::{self, Resolved, SelfFile};
use crate::features::Features;
use crate::install;
use crate::kernel::LandlockSupport;
use crate::ruleset::{Assessment, Plan, Status};

/// `LANDGATE_QUIET=1` (or `true`/`yes`) silences the status line when the
/// policy is fully enforced; warnings and errors are always printed.
pub use landgate_policy::env::QUIET as QUIET_ENV;

/// Runs the launcher with `argv` and returns the exit code, unless it became
/// the command (then it does not return).
pub fn run(argv: Vec<OsString>) -> u8 {
    match dispatch(argv) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("landgate: error: {err}");
            err.exit_code()
        }
    }
}

fn dispatch(argv: Vec<OsString>) -> Result<u8, LaunchError> {
    let wrappers_env = env::var(WRAPPERS_ENV).ok();
    match cli::parse(argv, wrappers_env.as_deref())? {
        Invocation::Exec {
            policy,
            dry_run: false,
            command,
        } => {
            let (name, args) = split_command(&command)?;
            Err(sandboxed_exec(&policy, name, name, args))
        }
        Invocation::Wrapper { argv0, name, args } => Err(wrapper(&argv0, &name, &args)),
        other => not_exec(other),
    }
}

/// Every invocation but `exec` and wrapper mode. Kept out of line: inlined
/// into `run`, `install`'s copy buffer (8 KiB) alone made `run`'s stack
/// frame three pages, each a page fault on every exec, which is the
/// launcher's hot path.
#[inline(never)]
#[cold]
fn not_exec(invocation: Invocation) -> Result<u8, LaunchError> {
    match invocation {
        Invocation::Help => {
            print!("{USAGE}");
            Ok(0)
        }
        Invocation::Version => {
            println!("landgate {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Invocation::Features { json } => {
            let features = Features::detect();
            if json {
                println!("{}", features.to_json());
            } else {
                print!("{}", features.render());
            }
            Ok(0)
        }
        Invocation::Install { dir, wrappers } => {
            let installed = install::install(&dir, &wrappers)?;
            println!(
                "landgate: installed {} and {} wrapper(s) in {}",
                installed.launcher.display(),
                installed.wrappers.len(),
                dir.join("bin").display()
            );
            Ok(0)
        }
        Invocation::Check { policy, command }
        | Invocation::Exec {
            policy, command, ..
        } => check(&policy, &command),
        Invocation::Wrapper { argv0, name, args } => Err(wrapper(&argv0, &name, &args)),
    }
}

fn split_command(command: &[OsString]) -> Result<(&OsStr, &[OsString]), LaunchError> {
    match command.split_first() {
        Some((name, args)) => Ok((name, args)),
        None => Err(LaunchError::Usage("missing the command to run".to_owned())),
    }
}

/// Wrapper mode: already sandboxed → exec the real program directly (no
/// second Landlock layer); otherwise sandbox with `$LANDGATE_POLICY` first.
fn wrapper(argv0: &OsStr, name: &OsStr, args: &[OsString]) -> LaunchError {
    if env::var_os(ACTIVE_ENV).is_some_and(|v| v == "1") {
        let resolved = match resolve_command(name) {
            Ok(resolved) => resolved,
            Err(err) => return err,
        };
        return exec::exec(&resolved.program, argv0, args, false, true);
    }
    let source = PolicySource::default();
    if let PolicySource::Env(env) = &source
        && env::var_os(env).is_none()
    {
        return LaunchError::WrapperPolicyMissing {
            env: env.clone(),
            what: name.to_string_lossy().into_owned(),
            argv0: argv0.to_string_lossy().into_owned(),
        };
    }
    sandboxed_exec(&source, name, argv0, args)
}

/// Applies the policy and becomes the command. Returns only on failure.
fn sandboxed_exec(
    source: &PolicySource,
    name: &OsStr,
    argv0: &OsStr,
    args: &[OsString],
) -> LaunchError {
    let prepared = (|| {
        let policy = load_policy(source, &name.to_string_lossy())?;
        let resolved = resolve_command(name)?;
        let plan = prepare(&policy)?;
        let what = resolved.program.display().to_string();
        require(policy.enforcement, &plan.assessment, &what)?;
        let assessment = plan.apply()?;
        // Checked again on what applying reached: a degradation found while
        // applying must not let a `required` policy run below full.
        require(policy.enforcement, &assessment, &what)?;
        if assessment.status != Status::FullyEnforced || !(policy.quiet || quiet_env()) {
            say(&format!("landgate: {}\n", assessment.summary()));
        }
        Ok(resolved)
    })();
    match prepared {
        Ok(resolved) => exec::exec(&resolved.program, argv0, args, true, true),
        Err(err) => err,
    }
}

/// `check` and `exec --dry-run`: print, apply nothing, run nothing. Exits
/// with the code `exec` would fail with before running the command, or 0.
fn check(source: &PolicySource, command: &[OsString]) -> Result<u8, LaunchError> {
    let policy = load_policy(source, "the command")?;
    let plan = prepare(&policy)?;
    println!("policy: {}", policy.to_json());
    print!("{}", plan.render());
    let mut what = "the command".to_owned();
    if let Some((name, _)) = command.split_first() {
        let resolved = resolve_command(name)?;
        println!("command: {}", resolved.program.display());
        what = resolved.program.display().to_string();
    }
    require(policy.enforcement, &plan.assessment, &what)?;
    Ok(0)
}

/// Plans `policy` on this kernel and prints the plan's warnings. `exec` and
/// `check` both plan here, so a dry run shows exactly what `exec` applies.
/// Resolving the command is left to the callers: `exec` resolves it before
/// planning, `check` only after printing the plan.
fn prepare(policy: &Policy) -> Result<Plan, LaunchError> {
    let plan = Plan::new(policy, LandlockSupport::detect())?;
    for warning in plan.warnings() {
        say(&format!("landgate: warning: {warning}\n"));
    }
    Ok(plan)
}

/// `name` on `$PATH`, skipping the launcher itself (its wrappers).
fn resolve_command(name: &OsStr) -> Result<Resolved, LaunchError> {
    exec::resolve_lazily(name, env::var_os("PATH").as_deref(), SelfFile::current)
}

/// `enforcement: required` refuses anything below FullyEnforced, except gaps
/// the policy chose itself (`allow_io_uring`), which the status line shows.
fn require(
    enforcement: Enforcement,
    assessment: &Assessment,
    what: &str,
) -> Result<(), LaunchError> {
    if enforcement == Enforcement::Required && !assessment.meets_required() {
        return Err(assessment.refusal(what));
    }
    Ok(())
}

fn load_policy(source: &PolicySource, what: &str) -> Result<Policy, LaunchError> {
    let json = match source {
        PolicySource::Env(name) => env::var_os(name)
            .ok_or_else(|| LaunchError::PolicyMissing {
                env: name.clone(),
                what: what.to_owned(),
            })?
            .into_string()
            .map_err(|_| LaunchError::PolicyNotUnicode { env: name.clone() })?,
        PolicySource::File(path) => {
            std::fs::read_to_string(path).map_err(|source| LaunchError::PolicyFile {
                path: path.clone(),
                source,
            })?
        }
    };
    Ok(Policy::from_json(&json)?)
}

/// One line to stderr in one `write`: `eprintln!` writes each piece of its
/// format apart (stderr is unbuffered), three syscalls for the status line
/// that the engine's policies print on every exec.
fn say(line: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(line.as_bytes());
}

fn quiet_env() -> bool {
    env::var(QUIET_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EXIT_NOT_ENFORCED;
    use crate::kernel::LandlockSupport;

    fn assessment(status: Status) -> Assessment {
        let policy = Policy::from_json(r#"{"v":1,"net":{"bind":[8080]}}"#).unwrap();
        let mut a = Assessment::new(
            &policy,
            LandlockSupport::Available {
                abi: 7,
                kernel_abi: 7,
            },
        );
        a.status = status;
        a
    }

    #[test]
    fn required_refuses_a_degraded_status_and_best_effort_runs() {
        let full = assessment(Status::FullyEnforced);
        require(Enforcement::Required, &full, "sh").unwrap();
        for status in [Status::PartiallyEnforced, Status::NotEnforced] {
            let degraded = assessment(status);
            let err = require(Enforcement::Required, &degraded, "sh").unwrap_err();
            assert_eq!(err.exit_code(), EXIT_NOT_ENFORCED);
            assert!(err.to_string().contains("refusing to run sh"), "{err}");
            require(Enforcement::BestEffort, &degraded, "sh").unwrap();
        }
    }

    #[test]
    fn required_runs_a_policy_that_allows_io_uring_over_its_tcp_rules() {
        let policy = Policy::from_json(
            r#"{"v":1,"enforcement":"required","net":{"bind":[8080]},"allow_io_uring":true}"#,
        )
        .unwrap();
        let support = LandlockSupport::Available {
            abi: 7,
            kernel_abi: 7,
        };
        let allowed = Assessment::new(&policy, support);
        assert_eq!(allowed.status, Status::PartiallyEnforced);
        require(Enforcement::Required, &allowed, "sh").unwrap();
        let old = Assessment::new(
            &policy,
            LandlockSupport::Available {
                abi: 3,
                kernel_abi: 3,
            },
        );
        require(Enforcement::Required, &old, "sh").unwrap_err();
    }
}
