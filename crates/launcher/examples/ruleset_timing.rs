//! `just bench`'s in-process row: one build and apply of a policy through
//! the launcher's own code, built as the launcher ships (`--profile
//! launcher`, static musl, its bump arena), so that the figure is the
//! binary's and not the benchmark driver's.
//!
//! ```text
//! ruleset_timing POLICY_JSON   prints "TOTAL PARSE PLAN SECCOMP LANDLOCK" in ns
//! ```
//!
//! PARSE is the policy JSON parsed, PLAN the plan made (the ABI probed,
//! every path opened), SECCOMP the filter attached, LANDLOCK the ruleset
//! created, filled and applied. The same
//! calls in the same order as `Plan::apply`, which installs the filter then
//! restricts; here the filter is installed by hand first so that the two
//! are timed apart. The process is restricted afterwards: one sample per
//! process.

use std::process::ExitCode;
use std::time::Instant;

use landgate_launcher::kernel::LandlockSupport;
use landgate_launcher::ruleset::{Plan, Status};
use landgate_launcher::seccomp::{self, Filters};

#[global_allocator]
static ARENA: landgate_launcher::arena::Arena = landgate_launcher::arena::Arena;

fn main() -> ExitCode {
    let Some(json) = std::env::args().nth(1) else {
        eprintln!("usage: ruleset_timing POLICY_JSON");
        return ExitCode::from(2);
    };
    match time(&json) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ruleset_timing: {err}");
            ExitCode::FAILURE
        }
    }
}

fn time(json: &str) -> Result<String, String> {
    let start = Instant::now();
    let policy = landgate_policy::Policy::from_json(json).map_err(|e| e.to_string())?;
    let parsed = Instant::now();
    let mut plan = Plan::new(&policy, LandlockSupport::detect()).map_err(|e| e.to_string())?;
    let planned = Instant::now();
    let filters = std::mem::replace(
        &mut plan.seccomp,
        Filters {
            mptcp: false,
            fastopen: false,
            io_uring: false,
        },
    );
    seccomp::install(filters)?;
    let filtered = Instant::now();
    let assessment = plan.apply().map_err(|e| e.to_string())?;
    let end = Instant::now();
    if assessment.status != Status::FullyEnforced {
        return Err(format!("not fully enforced: {}", assessment.summary()));
    }
    let ns = |a: Instant, b: Instant| (b - a).as_nanos();
    Ok(format!(
        "{} {} {} {} {}",
        ns(start, end),
        ns(start, parsed),
        ns(parsed, planned),
        ns(planned, filtered),
        ns(filtered, end)
    ))
}
