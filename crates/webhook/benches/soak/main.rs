//! `just soak`: the real `landgate-webhook` binary, two replicas behind a
//! loopback stand-in for the Service (a TCP proxy choosing a ready replica
//! per connection, as kube-proxy does), under valid load and abuse at once:
//!
//! - valid AdmissionReviews (HTTP/2, and HTTP/1.1 as with DISABLE_HTTP2),
//!   paced, each with the webhook's timeoutSeconds;
//! - idle connections held open (TLS, then nothing; reopened when closed);
//! - slow headers (first request and kept-alive), slow bodies, oversized
//!   bodies, malformed JSON, HTTP/2 stream floods and a rapid-reset flood;
//! - a burst of connections at one replica past its cap;
//! - the serving certificate rotated twice (same CA, renamed into place);
//! - one replica taken out of the endpoints, sent SIGTERM and restarted.
//!
//! Bounded in count and time; prints its figures and exits non-zero when a
//! goal is missed. `cargo test --benches` runs a scaled-down smoke version.
//!
//! LANDGATE_SOAK_REVIEWS (10000), LANDGATE_SOAK_IDLE (1000) and
//! LANDGATE_SOAK_RATE (reviews/s, 500) change the size.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

#[path = "../../tests/support/wire.rs"]
mod wire;

mod abuse;
mod cap_burst;
mod figures;
mod flood;
mod plan;
mod proxy;
mod replica;
mod report;
mod rotation;
mod run;
mod shared;
mod valid;

use std::process::ExitCode;
use std::time::Duration;

use landgate_webhook::tls;

use crate::plan::Plan;
use crate::report::Report;

/// The review every valid request carries (the abuse clients send it too).
const REVIEW: &[u8] = include_bytes!("../../../../tests/fixtures/admission/pod-create.json");
/// JSON cut short: a body the server must refuse with 400.
const MALFORMED: &[u8] = b"{\"apiVersion\": ";

/// Nothing here may take longer than this.
const SOAK_DEADLINE: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    // `cargo test --benches` runs this without --bench: a small smoke run.
    let smoke = std::env::args().all(|a| a != "--bench");
    let plan = Plan::from_env(smoke);
    tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = std::time::Instant::now();
    let report = runtime.block_on(async {
        match tokio::time::timeout(SOAK_DEADLINE, run::soak(&plan)).await {
            Ok(report) => report,
            Err(_) => {
                let mut report = Report::default();
                report.goal(false, format!("finished within {SOAK_DEADLINE:?}"));
                report
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    let mut report = report;
    report.line(format!("duration: {:.1}s", started.elapsed().as_secs_f64()));
    report.exit_code()
}
