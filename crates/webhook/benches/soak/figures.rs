//! The figures of a finished run, each judged against its goal.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::plan::{FIRST_REQUEST_TIMEOUT, Plan};
use crate::proxy::Endpoints;
use crate::report::Report;
use crate::shared::Soak;

/// The memory limit in manifests/base/deployment.yaml.
const MEMORY_LIMIT_KIB: u64 = 256 * 1024;

/// What a finished run leaves to judge.
pub struct Finished<'a> {
    pub plan: &'a Plan,
    pub soak: &'a Soak,
    pub endpoints: &'a Endpoints,
    /// How long the valid load took.
    pub valid_elapsed: Duration,
    /// The most idle connections seen open at once.
    pub peak_open: usize,
    pub replica_a: Usage,
}

/// Replica a's memory and descriptors, idle before the load and after it,
/// and its metrics at the end.
pub struct Usage {
    pub rss_idle: u64,
    pub rss_peak: u64,
    pub rss_after: u64,
    pub fds_before: usize,
    pub fds_after: usize,
    pub metrics: String,
}

impl Finished<'_> {
    pub fn report(&self, report: &mut Report) {
        self.valid(report);
        self.idle(report);
        self.invalid(report);
        self.replica_a(report);
    }

    fn valid(&self, report: &mut Report) {
        let Self {
            plan,
            soak,
            valid_elapsed,
            ..
        } = self;
        let ok = soak.valid_ok.load(Ordering::Relaxed);
        let failed = soak.valid_failed.load(Ordering::Relaxed);
        report.line(format!(
            "valid admissions: {ok} ok, {failed} failed, in {:.1}s ({:.0}/s)",
            valid_elapsed.as_secs_f64(),
            (ok + failed) as f64 / valid_elapsed.as_secs_f64()
        ));
        for error in soak.valid_errors.lock().expect("errors").iter().take(5) {
            report.line(format!("  failure: {error}"));
        }
        report.goal(
            failed == 0 && ok == plan.reviews,
            format!("all {} valid admissions allowed and patched", plan.reviews),
        );
    }

    fn idle(&self, report: &mut Report) {
        let Self {
            soak, peak_open, ..
        } = self;
        let reaped = soak.idle_reaped.load(Ordering::Relaxed);
        let longest = Duration::from_millis(soak.idle_longest_ms.load(Ordering::Relaxed));
        report.line(format!(
            "idle connections: {} held at once (peak seen), {reaped} closed by the server, longest lived {:.1}s",
            peak_open,
            longest.as_secs_f64()
        ));
        report.goal(
            reaped > 0 && longest <= FIRST_REQUEST_TIMEOUT + Duration::from_secs(2),
            format!(
                "no idle connection outlived --first-request-timeout ({:?}) by more than 2s",
                FIRST_REQUEST_TIMEOUT
            ),
        );
    }

    fn invalid(&self, report: &mut Report) {
        let Self {
            soak, endpoints, ..
        } = self;
        report.line("invalid requests, by class (outcome: count):");
        let tally = soak.tally.take();
        for (class, outcomes) in &tally {
            let total: usize = outcomes.values().sum();
            let unexpected: usize = outcomes
                .iter()
                .filter(|((_, expected), _)| !expected)
                .map(|(_, n)| n)
                .sum();
            let detail: Vec<String> = outcomes
                .iter()
                .map(|((outcome, expected), n)| {
                    format!(
                        "{outcome}{}: {n}",
                        if *expected { "" } else { " (UNEXPECTED)" }
                    )
                })
                .collect();
            report.line(format!("  {class:<34} {total:>6}  {}", detail.join(", ")));
            report.goal(
                unexpected == 0,
                format!(
                    "{class}: every attempt refused, answered 4xx/503 or closed at its deadline"
                ),
            );
        }
        let dial_failures = endpoints.dial_failures.load(Ordering::Relaxed);
        report.line(format!(
            "proxy: {dial_failures} connections with no replica to go to"
        ));
    }

    fn replica_a(&self, report: &mut Report) {
        let Usage {
            rss_idle,
            rss_peak,
            rss_after,
            fds_before,
            fds_after,
            ref metrics,
        } = self.replica_a;
        report.line(format!(
            "replica a: RSS idle {} MiB, peak {} MiB, after {} MiB; fds before {fds_before}, after {fds_after}",
            rss_idle / 1024,
            rss_peak / 1024,
            rss_after / 1024
        ));
        report.goal(
            rss_peak < MEMORY_LIMIT_KIB,
            format!(
                "peak RSS under the Deployment's memory limit ({} MiB)",
                MEMORY_LIMIT_KIB / 1024
            ),
        );
        report.goal(
            fds_after <= fds_before + 4,
            "replica a's file descriptors back to their idle count (+4)",
        );
        report.line("replica a metrics (non-zero):");
        for prefix in [
            "landgate_connections_closed_total",
            "landgate_connections_refused_total",
            "landgate_connections_open",
            "landgate_bad_requests_total",
            "landgate_tls_certificate_reloads_total",
            "landgate_admission_reviews_total",
        ] {
            for line in metric_lines(metrics, prefix) {
                report.line(format!("  {line}"));
            }
        }
    }
}

/// `name{labels} value` lines of a metrics text that start with `prefix`.
fn metric_lines(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(prefix) && !l.ends_with(" 0"))
        .map(str::to_owned)
        .collect()
}
