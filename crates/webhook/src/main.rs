use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    match landgate_webhook::cli::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the context chain on one line, without the
            // backtrace that anyhow's Debug form adds under RUST_BACKTRACE.
            eprintln!("landgate-webhook: {err:#}");
            ExitCode::FAILURE
        }
    }
}
