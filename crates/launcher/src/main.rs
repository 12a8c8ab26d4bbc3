//! `landgate`: see `landgate --help` and the crate docs.

#![forbid(unsafe_code)]

use std::process::ExitCode;

#[global_allocator]
static ARENA: landgate_launcher::arena::Arena = landgate_launcher::arena::Arena;

fn main() -> ExitCode {
    ExitCode::from(landgate_launcher::run(std::env::args_os().collect()))
}
