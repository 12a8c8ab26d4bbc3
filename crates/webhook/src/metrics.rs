//! Every metric the webhook exports, in one place, with the `landgate`
//! prefix.

use std::time::Duration;

use landgate_engine::Outcome;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::admission::Webhook;
use crate::server::{CloseReason, Listener};

/// The `outcome` label values, few and stable for dashboards: a patch
/// (`mutated`), admitted without one (`skipped`), refused (`rejected`), or
/// landgate could not judge (`error`).
const OUTCOME_LABELS: [&str; 4] = ["mutated", "skipped", "rejected", "error"];

/// The `outcome` label of an [`Outcome`].
pub fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Wrapped => "mutated",
        Outcome::Refused { .. } => "rejected",
        Outcome::Failed(_) => "error",
        Outcome::AlreadyWrapped | Outcome::Skipped(_) | Outcome::Passed(_) => "skipped",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    /// `mutate` or `validate`: which webhook answered.
    webhook: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    /// `sandboxed`, `passed`, `allowed`, `refused`.
    decision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusalLabels {
    webhook: &'static str,
    /// The kind of refusal ([`landgate_engine::MutateError::reason`], …).
    reason: &'static str,
}

/// The `webhook` label of a review.
fn webhook_label(webhook: Webhook) -> &'static str {
    match webhook {
        Webhook::Mutating => "mutate",
        Webhook::Validating => "validate",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CloseLabels {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    path: &'static str,
    code: u16,
}

/// Handles to the metrics; cheap to clone (each is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct Metrics {
    reviews: Family<OutcomeLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    connects: Family<DecisionLabels, Counter>,
    review_duration: Histogram,
    previews: Counter,
    bad_requests: Family<StatusLabels, Counter>,
    certificate_reloads: Counter,
    connections_open: Family<ListenerLabels, Gauge>,
    connections_refused: Family<ListenerLabels, Counter>,
    connections_closed: Family<CloseLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in a new registry.
    pub fn new() -> (Self, Registry) {
        let mut registry = Registry::with_prefix("landgate");
        let metrics = Self {
            reviews: Family::default(),
            refusals: Family::default(),
            connects: Family::default(),
            // Reviews take tens of microseconds; the API server gives up after
            // timeoutSeconds (default 10s, ours 5s).
            review_duration: Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0,
            ]),
            previews: Counter::default(),
            bad_requests: Family::default(),
            certificate_reloads: Counter::default(),
            connections_open: Family::default(),
            connections_refused: Family::default(),
            connections_closed: Family::default(),
        };
        registry.register(
            "admission_reviews",
            "Admission reviews answered, by webhook (mutate, validate) and outcome (mutated, skipped, rejected, error)",
            metrics.reviews.clone(),
        );
        for webhook in [Webhook::Mutating, Webhook::Validating] {
            for outcome in OUTCOME_LABELS {
                // Export zeros so that rate() and alerts work before the first event.
                let _ = metrics.reviews.get_or_create(&OutcomeLabels {
                    webhook: webhook_label(webhook),
                    outcome,
                });
            }
        }
        registry.register(
            "exec",
            "kubectl exec and attach into pods, by decision: sandboxed (rewritten through the launcher), passed (not landgate's pod, or already sandboxed), allowed (unsandboxed under landgate.dev/exec: allow; each logged), refused",
            metrics.connects.clone(),
        );
        for decision in ["sandboxed", "passed", "allowed", "refused"] {
            let _ = metrics.connects.get_or_create(&DecisionLabels { decision });
        }
        registry.register(
            "refusals",
            "Admission reviews refused, by webhook and reason (the log line of each refusal carries the same reason and the message)",
            metrics.refusals.clone(),
        );
        registry.register(
            "admission_review_duration_seconds",
            "Time to answer one admission review, from body read to response encoded",
            metrics.review_duration.clone(),
        );
        registry.register(
            "previews",
            "Preview requests answered",
            metrics.previews.clone(),
        );
        registry.register(
            "bad_requests",
            "Requests refused before review (malformed, too large, timed out), by path and status code",
            metrics.bad_requests.clone(),
        );
        registry.register(
            "tls_certificate_reloads",
            "Times the serving certificate was re-read after changing on disk",
            metrics.certificate_reloads.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now (TLS handshakes in progress included), by listener",
            metrics.connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at accept because the listener was at its cap (--max-connections, --admin-max-connections)",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections ended, by listener and reason (peer, shutdown, handshake_failed, or the deadline that closed it)",
            metrics.connections_closed.clone(),
        );
        for listener in Listener::ALL {
            let labels = ListenerLabels {
                listener: listener.as_str(),
            };
            let _ = metrics.connections_open.get_or_create(&labels);
            let _ = metrics.connections_refused.get_or_create(&labels);
            for reason in CloseReason::ALL {
                let _ = metrics.connections_closed.get_or_create(&CloseLabels {
                    listener: listener.as_str(),
                    reason: reason.as_str(),
                });
            }
        }
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "Build information", build_info);
        (metrics, registry)
    }

    pub fn review(&self, webhook: Webhook, outcome: &Outcome, elapsed: Duration) {
        let webhook = webhook_label(webhook);
        self.reviews
            .get_or_create(&OutcomeLabels {
                webhook,
                outcome: outcome_label(outcome),
            })
            .inc();
        if let Outcome::Refused { reason, .. } = outcome {
            self.refusals
                .get_or_create(&RefusalLabels { webhook, reason })
                .inc();
        }
        self.review_duration.observe(elapsed.as_secs_f64());
    }

    pub fn connect(&self, decision: &'static str) {
        self.connects
            .get_or_create(&DecisionLabels { decision })
            .inc();
    }

    pub fn preview(&self) {
        self.previews.inc();
    }

    pub fn bad_request(&self, path: &'static str, code: u16) {
        self.bad_requests
            .get_or_create(&StatusLabels { path, code })
            .inc();
    }

    pub fn certificate_reloaded(&self) {
        self.certificate_reloads.inc();
    }

    pub fn connection_opened(&self, listener: Listener) {
        self.connections_open
            .get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            })
            .inc();
    }

    pub fn connection_closed(&self, listener: Listener, reason: CloseReason) {
        self.connections_open
            .get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            })
            .dec();
        self.connections_closed
            .get_or_create(&CloseLabels {
                listener: listener.as_str(),
                reason: reason.as_str(),
            })
            .inc();
    }

    pub fn connection_refused(&self, listener: Listener) {
        self.connections_refused
            .get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            })
            .inc();
    }
}

/// Renders the registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reviews_by_outcome() {
        let (metrics, registry) = Metrics::new();
        let refused = Outcome::Refused {
            reason: "tampered",
            message: "no".into(),
        };
        metrics.review(
            Webhook::Mutating,
            &Outcome::Wrapped,
            Duration::from_micros(50),
        );
        metrics.review(
            Webhook::Mutating,
            &Outcome::Wrapped,
            Duration::from_micros(70),
        );
        metrics.review(Webhook::Validating, &refused, Duration::from_micros(20));
        let text = encode(&registry);
        for line in [
            r#"landgate_admission_reviews_total{webhook="mutate",outcome="mutated"} 2"#,
            r#"landgate_admission_reviews_total{webhook="validate",outcome="rejected"} 1"#,
            r#"landgate_admission_reviews_total{webhook="mutate",outcome="rejected"} 0"#,
            r#"landgate_admission_reviews_total{webhook="validate",outcome="error"} 0"#,
            r#"landgate_refusals_total{webhook="validate",reason="tampered"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.contains("landgate_admission_review_duration_seconds_count 3"));
        assert!(text.contains(r#"landgate_build_info{version="0.1.0"} 1"#));
    }

    #[test]
    fn counts_connections_by_listener_and_reason() {
        let (metrics, registry) = Metrics::new();
        metrics.connection_opened(Listener::Admission);
        metrics.connection_opened(Listener::Admission);
        metrics.connection_closed(Listener::Admission, CloseReason::IdleTimeout);
        metrics.connection_refused(Listener::Admission);
        let text = encode(&registry);
        for line in [
            r#"landgate_connections_open{listener="admission"} 1"#,
            r#"landgate_connections_open{listener="admin"} 0"#,
            r#"landgate_connections_refused_total{listener="admission"} 1"#,
            r#"landgate_connections_closed_total{listener="admission",reason="idle_timeout"} 1"#,
            r#"landgate_connections_closed_total{listener="admission",reason="first_request_timeout"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
}
