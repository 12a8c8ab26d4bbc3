//! Validation: the pod as the API server will store it, after every mutating
//! webhook, judged by what landgate's own mutating pass would still change.
//! A pod is admitted when that pass would leave it alone (it is wrapped as
//! its `landgate.dev/status` records), or would only record why it runs
//! unwrapped (an opt-out its namespace allows, an excluded namespace, …);
//! anything else is refused, naming the container and the field. It shares
//! every rule with the mutating pass, because it runs it; it never patches.
//!
//! Validation runs after every mutating webhook (and after their
//! reinvocation), so it is the one place where the order of webhooks, or a
//! mutating call skipped under `failurePolicy: Ignore`, cannot leave a pod
//! unwrapped or wrapped differently from its record.

use json_patch::PatchOperation;
use json_patch::jsonptr::Pointer;
use k8s_openapi::api::core::v1::Pod;

use crate::derive;
use crate::mutate::{INIT_CONTAINER_NAME, PodContext, mutate_pod, pod_label};
use crate::outcome::Outcome;
use crate::settings::Settings;
use crate::status::{PROFILE_LABEL, parse_status};

/// The `reason` of a pod that should have been wrapped and is not.
pub const NOT_WRAPPED: &str = "not-wrapped";
/// The `reason` of a pod changed after landgate wrapped it.
pub const CHANGED: &str = "changed-after-wrapping";
/// The `reason` of a pod admitted unwrapped whose landgate record (status
/// annotation, profile label) is not what landgate would write.
pub const FORGED_RECORD: &str = "forged-record";

/// Judges a pod as it will be stored: [`Outcome::AlreadyWrapped`],
/// [`Outcome::Skipped`] (admitted unwrapped, and why) or
/// [`Outcome::Refused`]. Never a patch.
pub fn validate_pod(settings: &Settings, context: PodContext<'_>, pod: &Pod) -> Outcome {
    let mutation = match mutate_pod(settings, context, pod) {
        Ok(mutation) => mutation,
        Err(err) => {
            return Outcome::Refused {
                reason: err.reason(),
                message: err.to_string(),
            };
        }
    };
    let ops = &mutation.patch.0;
    if ops.is_empty() {
        return mutation.outcome;
    }
    let label = pod_label(context.namespace, pod);
    let places = places(pod, ops);
    match (&mutation.outcome, recorded_containers(pod)) {
        // Not wrapped, and landgate would not wrap it either: the mutating
        // webhook never saw it (the opt-out label skips it), so the record
        // of why is missing. A record that is there and differs was not
        // written by landgate.
        (Outcome::Skipped(_), None) if ops.iter().all(only_record) => {
            let carried = carried_record(pod);
            if carried.is_empty() {
                mutation.outcome
            } else {
                Outcome::Refused {
                    reason: FORGED_RECORD,
                    message: format!(
                        "pod {label} is admitted unwrapped, but it carries {}, which landgate did not write for it; only landgate writes its record, when it creates the pod. Remove it from the pod",
                        carried.join(" and ")
                    ),
                }
            }
        }
        (Outcome::Skipped(why), Some(_)) => Outcome::Refused {
            reason: CHANGED,
            message: format!(
                "pod {label} was changed after landgate wrapped it, and landgate would now admit it only unwrapped ({why}); a pod is never half-wrapped. A mutating webhook that runs after landgate made the change: order it before landgate, or re-create the pod"
            ),
        },
        (_, None) => Outcome::Refused {
            reason: NOT_WRAPPED,
            message: format!(
                "pod {label} is not wrapped but should be: {}, so {} would run outside the sandbox. Create it again once landgate's mutating webhook answers; to run it unwrapped, opt it out (landgate.dev/inject: \"false\") in a namespace that allows it (landgate.dev/allow-opt-out: \"true\")",
                missing_status(pod),
                places
                    .iter()
                    .find(|p| p.container.is_some())
                    .map_or("its containers", |p| p.what.as_str()),
            ),
        },
        (_, Some(recorded)) => Outcome::Refused {
            reason: CHANGED,
            message: format!(
                "pod {label} was changed after landgate wrapped it: {}. A mutating webhook that runs after landgate made the change; order it before landgate (the API server calls mutating webhooks by configuration name), or re-create the pod",
                changes(&places, &recorded)
            ),
        },
    }
}

/// The names of the containers the pod's status records as wrapped, if it
/// records any.
fn recorded_containers(pod: &Pod) -> Option<Vec<String>> {
    let raw = pod.metadata.annotations.as_ref()?.get(derive::STATUS)?;
    let status = parse_status(raw).ok()?;
    (!status.containers.is_empty()).then(|| status.containers.into_keys().collect())
}

/// The parts of landgate's record the pod carries, named.
fn carried_record(pod: &Pod) -> Vec<String> {
    let annotation = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(derive::STATUS))
        .map(|value| format!("annotation {}={value:?}", derive::STATUS));
    let label = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(PROFILE_LABEL))
        .map(|value| format!("label {PROFILE_LABEL}={value:?}"));
    annotation.into_iter().chain(label).collect()
}

fn missing_status(pod: &Pod) -> String {
    let status = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(derive::STATUS));
    match status.map(|raw| parse_status(raw)) {
        None => format!(
            "it carries no {} annotation, so landgate's mutating webhook did not see it (it was not called, or its call failed under failurePolicy: Ignore)",
            derive::STATUS
        ),
        Some(Ok(status)) => format!(
            "its {} says it was admitted unwrapped ({}), which no longer holds",
            derive::STATUS,
            status.skipped.as_deref().unwrap_or("no reason recorded")
        ),
        Some(Err(_)) => format!("its {} annotation is not landgate's", derive::STATUS),
    }
}

/// Whether an operation only writes landgate's record: the status
/// annotation or the profile label (or creates the map holding only it).
fn only_record(op: &PatchOperation) -> bool {
    let tokens = tokens(op.path());
    match tokens.as_slice() {
        [metadata, map] => metadata == "metadata" && (map == "annotations" || map == "labels"),
        [metadata, map, key] => {
            metadata == "metadata"
                && ((map == "annotations" && key == derive::STATUS)
                    || (map == "labels" && key == PROFILE_LABEL))
        }
        _ => false,
    }
}

fn tokens(path: &Pointer) -> Vec<String> {
    path.tokens().map(|t| t.decoded().into_owned()).collect()
}

/// Where a patch operation points in the pod: `container "web"
/// (spec.containers[0])` and the field under it, or a pod-level field.
struct Place {
    what: String,
    field: Option<String>,
    container: Option<String>,
    /// The operation writes only landgate's record.
    record: bool,
}

/// Every operation's place, each resolved against the pod as the operations
/// before it left it: after a `move` or a `remove`, indices name other
/// items than in the input pod. Only on the refusal path.
fn places(pod: &Pod, ops: &[PatchOperation]) -> Vec<Place> {
    let mut doc = serde_json::to_value(pod).unwrap_or_default();
    let mut places = Vec::with_capacity(ops.len());
    for op in ops {
        places.push(place(&doc, op));
        // The engine's patch applies (its tests prove it); were one not to,
        // later places would only be named less precisely.
        let _ = json_patch::patch(&mut doc, std::slice::from_ref(op));
    }
    places
}

fn place(doc: &serde_json::Value, op: &PatchOperation) -> Place {
    let tokens = tokens(op.path());
    match tokens.as_slice() {
        [s, list, index, rest @ ..]
            if s == "spec" && (list == "containers" || list == "initContainers") =>
        {
            let container =
                &doc["spec"][list.as_str()][index.parse::<usize>().unwrap_or(usize::MAX)];
            let name = container["name"].as_str().map(str::to_owned);
            let kind = if list == "containers" {
                "container"
            } else {
                "init container"
            };
            // `env` names the variable: LANDGATE_POLICY is not PATH.
            let field = match rest {
                [env, i, ..] if env == "env" => Some(
                    container["env"][i.parse::<usize>().unwrap_or(usize::MAX)]["name"]
                        .as_str()
                        .map_or_else(|| env.clone(), |name| format!("env {name}")),
                ),
                _ => rest.first().cloned(),
            };
            Place {
                what: match &name {
                    Some(name) => format!("{kind} {name:?} (spec.{list}[{index}])"),
                    None => format!("spec.{list}[{index}]"),
                },
                field,
                container: name,
                record: false,
            }
        }
        [metadata, map, key] if metadata == "metadata" && map == "labels" => Place {
            what: format!("label {key}"),
            field: None,
            container: None,
            record: only_record(op),
        },
        [metadata, map, key] if metadata == "metadata" && map == "annotations" => Place {
            what: format!("annotation {key}"),
            field: None,
            container: None,
            record: only_record(op),
        },
        _ => Place {
            what: tokens.join("."),
            field: None,
            container: None,
            record: only_record(op),
        },
    }
}

/// What differs from what landgate wrote, place by place, in patch order:
/// `container "web" (spec.containers[0]): command, env; spec.volumes`. The
/// record's own places are named only when nothing else differs (the status
/// is rewritten whenever a container is).
fn changes(places: &[Place], recorded: &[String]) -> String {
    let relevant: Vec<&Place> = match places.iter().any(|p| !p.record) {
        true => places.iter().filter(|p| !p.record).collect(),
        false => places.iter().collect(),
    };
    let mut grouped: Vec<(&str, bool, Vec<&str>)> = Vec::new();
    for place in relevant {
        let unrecorded = place
            .container
            .as_ref()
            .is_some_and(|name| !recorded.contains(name) && name != INIT_CONTAINER_NAME);
        match grouped.iter_mut().find(|(what, _, _)| *what == place.what) {
            Some((_, _, fields)) => {
                if let Some(field) = place.field.as_deref()
                    && !fields.contains(&field)
                {
                    fields.push(field);
                }
            }
            None => grouped.push((
                &place.what,
                unrecorded,
                place.field.as_deref().into_iter().collect(),
            )),
        }
    }
    grouped
        .into_iter()
        .map(|(what, unrecorded, fields)| {
            if unrecorded {
                format!("{what} is not wrapped (it was added after landgate wrapped the pod)")
            } else if fields.is_empty() {
                format!("{what} is not as landgate wrote it")
            } else {
                format!("{what}: {} not as landgate wrote it", fields.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
