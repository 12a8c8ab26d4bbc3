//! Kubernetes Events, so that someone with only `kubectl` sees what landgate
//! did to pods that never made it, or made it unsandboxed: a refusal (by
//! either webhook) and an admission without a sandbox each become an Event
//! on the pod's controller (its ReplicaSet, Job, …), or on its namespace
//! when it has none (a refused pod does not exist to carry one).
//!
//! Best-effort by design: an admission only queues a notice (never waits),
//! one background task publishes them, a full queue drops the notice, and a
//! publication that fails or hangs costs nothing but a metric. The API
//! server's aggregation (an event series per controller, reason and
//! landgate replica) keeps a crash-looping workload from flooding the
//! namespace. Dry runs never produce one (`sideEffects: NoneOnDryRun`).

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use landgate_engine::Outcome;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::admission::{Reviewed, Webhook};

/// Notices waiting to be published; beyond this, new ones are dropped.
const QUEUE: usize = 256;
/// One publication's budget: a slow API server delays only later events.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// The API server refuses an Event note over 1 kB.
const MAX_NOTE_BYTES: usize = 1024;

/// The reporting controller named in every Event.
pub const CONTROLLER: &str = "landgate";

/// The queue into the publishing task; cheap to clone.
#[derive(Clone)]
pub struct Events {
    queue: mpsc::Sender<Notice>,
    counts: Family<ResultLabels, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    /// `published`, `failed` (refused, or timed out) or `dropped` (queue
    /// full).
    result: &'static str,
}

/// One Event to publish.
#[derive(Debug)]
struct Notice {
    regarding: ObjectReference,
    event_type: EventType,
    reason: String,
    note: String,
}

impl Events {
    /// The queue and the task that publishes from it, as `instance` (the
    /// replica's pod name, when known) of [`CONTROLLER`].
    pub fn start(
        client: kube::Client,
        instance: Option<String>,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, mut notices) = mpsc::channel::<Notice>(QUEUE);
        let counts = Family::<ResultLabels, Counter>::default();
        for result in ["published", "failed", "dropped"] {
            let _ = counts.get_or_create(&ResultLabels { result });
        }
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: CONTROLLER.to_owned(),
                instance,
            },
        );
        let published = counts.clone();
        let task = async move {
            while let Some(notice) = notices.recv().await {
                let event = Event {
                    type_: notice.event_type,
                    reason: notice.reason,
                    note: Some(notice.note),
                    action: "Admit".to_owned(),
                    secondary: None,
                };
                let result = tokio::time::timeout(
                    PUBLISH_TIMEOUT,
                    recorder.publish(&event, &notice.regarding),
                )
                .await;
                let label = match result {
                    Ok(Ok(())) => "published",
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "could not publish an Event (best-effort; the admission was not affected)");
                        "failed"
                    }
                    Err(_) => {
                        tracing::warn!(
                            "publishing an Event timed out (best-effort; the admission was not affected)"
                        );
                        "failed"
                    }
                };
                published
                    .get_or_create(&ResultLabels { result: label })
                    .inc();
            }
        };
        (Self { queue, counts }, task)
    }

    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "events",
            "Kubernetes Events about refused and unsandboxed pods, by result (published, failed, dropped when the queue was full)",
            self.counts.clone(),
        );
    }

    /// Queues the Event a review calls for, if any; never waits.
    pub fn observe(&self, webhook: Webhook, reviewed: &Reviewed, excluded: bool) {
        let Some(notice) = notice(webhook, reviewed, excluded) else {
            return;
        };
        if self.queue.try_send(notice).is_err() {
            self.counts
                .get_or_create(&ResultLabels { result: "dropped" })
                .inc();
        }
    }
}

/// The Event for a review: a refusal by either webhook, or a pod created
/// unsandboxed (outside an excluded namespace), told by the validating
/// webhook: it judges every created pod once, as stored, where the mutating
/// one may be called twice (reinvocation) or not at all (the opt-out label).
/// Nothing for dry runs, wrapped pods and updates admitted.
fn notice(webhook: Webhook, reviewed: &Reviewed, excluded: bool) -> Option<Notice> {
    if reviewed.dry_run || reviewed.namespace.is_empty() {
        return None;
    }
    let pod = match reviewed.name.as_str() {
        "" => format!("a pod in namespace {}", reviewed.namespace),
        name => format!("pod {}/{name}", reviewed.namespace),
    };
    let (event_type, reason, note) = match (&reviewed.outcome, webhook) {
        (Outcome::Refused { reason, message }, _) => (
            EventType::Warning,
            pascal_case(reason),
            format!("landgate refused {pod}: {message}"),
        ),
        (Outcome::Skipped(why), Webhook::Validating) if reviewed.creates && !excluded => (
            EventType::Warning,
            "NotSandboxed".to_owned(),
            format!("landgate admitted {pod} without a sandbox: {why}"),
        ),
        _ => return None,
    };
    Some(Notice {
        regarding: regarding(&reviewed.namespace, reviewed.owner.as_ref()),
        event_type,
        reason,
        note: truncate(note, MAX_NOTE_BYTES),
    })
}

/// The pod's controller, else its namespace (where the Event is created
/// either way).
fn regarding(namespace: &str, owner: Option<&OwnerReference>) -> ObjectReference {
    match owner {
        Some(owner) => ObjectReference {
            api_version: Some(owner.api_version.clone()),
            kind: Some(owner.kind.clone()),
            name: Some(owner.name.clone()),
            uid: Some(owner.uid.clone()),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        None => ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Namespace".to_owned()),
            name: Some(namespace.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
    }
}

/// `not-wrapped` → `NotWrapped`: Event reasons are PascalCase.
fn pascal_case(reason: &str) -> String {
    reason
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect()
}

/// At most `max` bytes, cut at a character boundary, with `…` when cut.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::admission::AdmissionResponse;

    fn reviewed(outcome: Outcome, owner: Option<OwnerReference>) -> Reviewed {
        Reviewed {
            response: AdmissionResponse::invalid("unused"),
            outcome,
            uid: "1".into(),
            namespace: "shop".into(),
            name: "web-7d9f*".into(),
            dry_run: false,
            creates: true,
            owner,
            connect: None,
        }
    }

    fn replica_set() -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-7d9f".into(),
            uid: "u-1".into(),
            controller: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn a_refusal_is_a_warning_on_the_controller_named_by_its_reason() {
        let refused = Outcome::Refused {
            reason: "opt-out-forbidden",
            message: "no".into(),
        };
        let notice = notice(
            Webhook::Validating,
            &reviewed(refused, Some(replica_set())),
            false,
        )
        .unwrap();
        assert_eq!(notice.event_type, EventType::Warning);
        assert_eq!(notice.reason, "OptOutForbidden");
        assert_eq!(notice.note, "landgate refused pod shop/web-7d9f*: no");
        assert_eq!(notice.regarding.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(notice.regarding.uid.as_deref(), Some("u-1"));
        assert_eq!(notice.regarding.namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn a_bare_pod_admitted_unsandboxed_is_told_on_its_namespace() {
        let skipped = Outcome::Skipped("it opts out".into());
        let told = notice(Webhook::Validating, &reviewed(skipped.clone(), None), false).unwrap();
        assert_eq!(told.reason, "NotSandboxed");
        assert_eq!(told.regarding.kind.as_deref(), Some("Namespace"));
        assert_eq!(told.regarding.name.as_deref(), Some("shop"));
        // Not from the mutating webhook (the validating one tells it once),
        // not for an excluded namespace, not for a dry run or an update.
        assert!(notice_of(Webhook::Mutating, skipped.clone(), |_| {}).is_none());
        assert!(notice(Webhook::Validating, &reviewed(skipped.clone(), None), true).is_none());
        assert!(notice_of(Webhook::Validating, skipped.clone(), |r| r.dry_run = true).is_none());
        assert!(notice_of(Webhook::Validating, skipped, |r| r.creates = false).is_none());
    }

    #[test]
    fn wrapped_and_passed_pods_are_not_told() {
        for outcome in [
            Outcome::Wrapped,
            Outcome::AlreadyWrapped,
            Outcome::Passed("update".into()),
        ] {
            for webhook in [Webhook::Mutating, Webhook::Validating] {
                assert!(notice_of(webhook, outcome.clone(), |_| {}).is_none());
            }
        }
    }

    fn notice_of(
        webhook: Webhook,
        outcome: Outcome,
        edit: impl FnOnce(&mut Reviewed),
    ) -> Option<Notice> {
        let mut r = reviewed(outcome, None);
        edit(&mut r);
        notice(webhook, &r, false)
    }

    #[test]
    fn notes_fit_the_api_servers_limit() {
        let long = "é".repeat(2000);
        let cut = truncate(long, MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short".into(), MAX_NOTE_BYTES), "short");
    }
}
