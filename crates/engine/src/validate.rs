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

use std::collections::BTreeSet;

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
    let recorded = recorded_containers(pod);
    match (&mutation.outcome, recorded) {
        // Not wrapped, and landgate would not wrap it either: the only
        // change would be the record of why.
        (Outcome::Skipped(_), None) if ops.iter().all(only_record) => mutation.outcome,
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
                first_container(pod, ops).unwrap_or_else(|| "its containers".to_owned()),
            ),
        },
        (_, Some(recorded)) => Outcome::Refused {
            reason: CHANGED,
            message: format!(
                "pod {label} was changed after landgate wrapped it: {}. A mutating webhook that runs after landgate made the change; order it before landgate (the API server calls mutating webhooks by configuration name), or re-create the pod",
                changes(pod, ops, &recorded)
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

/// Where a patch path points in the pod: `container "web"
/// (spec.containers[0])` and the field under it, or the pod-level field.
struct Place {
    what: String,
    field: Option<String>,
    container: Option<String>,
}

fn place(pod: &Pod, path: &Pointer) -> Place {
    let tokens = tokens(path);
    let spec = pod.spec.as_ref();
    match tokens.as_slice() {
        [s, list, index, rest @ ..]
            if s == "spec" && (list == "containers" || list == "initContainers") =>
        {
            let containers = match list.as_str() {
                "containers" => spec.map(|s| s.containers.as_slice()),
                _ => spec.and_then(|s| s.init_containers.as_deref()),
            };
            let container = index
                .parse::<usize>()
                .ok()
                .and_then(|i| containers.and_then(|c| c.get(i)));
            let name = container.map(|c| c.name.clone());
            // `env` names the variable: LANDGATE_POLICY is not PATH.
            let field = match rest {
                [env, i, ..] if env == "env" => i
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| container?.env.as_ref()?.get(i))
                    .map(|var| format!("env {}", var.name))
                    .or_else(|| Some(env.clone())),
                _ => rest.first().cloned(),
            };
            let kind = if list == "containers" {
                "container"
            } else {
                "init container"
            };
            Place {
                what: match &name {
                    Some(name) => format!("{kind} {name:?} (spec.{list}[{index}])"),
                    None => format!("spec.{list}[{index}]"),
                },
                field,
                container: name,
            }
        }
        _ => Place {
            what: tokens.join("."),
            field: None,
            container: None,
        },
    }
}

/// The first container the patch would wrap.
fn first_container(pod: &Pod, ops: &[PatchOperation]) -> Option<String> {
    ops.iter()
        .map(|op| place(pod, op.path()))
        .find(|p| p.container.is_some())
        .map(|p| p.what)
}

/// What differs from what landgate wrote, place by place, in patch order:
/// `container "web" (spec.containers[0]): command, env; spec.volumes`.
fn changes(pod: &Pod, ops: &[PatchOperation], recorded: &[String]) -> String {
    let mut places: Vec<(String, Vec<String>)> = Vec::new();
    let mut unrecorded = BTreeSet::new();
    for op in ops.iter().filter(|op| !only_record(op)) {
        let place = place(pod, op.path());
        if let Some(name) = &place.container
            && !recorded.contains(name)
            && name != INIT_CONTAINER_NAME
        {
            unrecorded.insert(place.what.clone());
        }
        match places.iter_mut().find(|(what, _)| *what == place.what) {
            Some((_, fields)) => {
                if let Some(field) = place.field
                    && !fields.contains(&field)
                {
                    fields.push(field);
                }
            }
            None => places.push((place.what, place.field.into_iter().collect())),
        }
    }
    if places.is_empty() {
        return format!("its {} annotation no longer matches", derive::STATUS);
    }
    places
        .into_iter()
        .map(|(what, fields)| {
            if unrecorded.contains(&what) {
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
