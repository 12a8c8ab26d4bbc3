use std::process::ExitCode;

use clap::Parser as _;

/// The webhook ships as a static musl binary, and musl's allocator takes
/// one lock and hands memory back to the kernel eagerly: under `just bench`
/// load the server spent its time in mmap/munmap, TLB flushes and futex
/// wake-ups (perf). mimalloc keeps per-thread heaps and reuses pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
