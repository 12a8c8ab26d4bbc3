//! `landgate`: see `landgate --help` and the crate docs.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(landgate_launcher::run(std::env::args_os().collect()))
}
