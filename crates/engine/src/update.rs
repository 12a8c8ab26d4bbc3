//! Pod updates after landgate wrapped a pod: old Pod and new Pod in, a
//! verdict out. No IO, and never a patch: landgate wraps a pod once, at
//! creation, and on an update only refuses what would reach the sandbox.
//!
//! What the API server lets change on a running pod, and why it matters:
//! - `spec.initContainers[*].image` (images are mutable): landgate-init's
//!   image swapped for the tenant's takes effect whenever init containers
//!   run again (the pod sandbox is recreated), and that image writes the
//!   launcher every container runs through;
//! - `spec.containers[*].image` of a wrapped container: its entrypoint,
//!   PATH, working directory and digest pin were resolved for the image
//!   landgate admitted, so another image would run under a sandbox built
//!   for a different one (refused; workloads roll out new pods);
//! - annotations, so `landgate.dev/status`, the record of what was wrapped;
//! - labels, so `landgate.dev/inject: "false"`, which the shipped
//!   objectSelector matches: the API server calls a webhook on an update
//!   when the old OR the new object matches, so once both carry the label
//!   no later update of the pod reaches landgate;
//! - `spec.ephemeralContainers`, through the `pods/ephemeralcontainers`
//!   subresource (`kubectl debug`): an ephemeral container may have
//!   volumeMounts, so it could mount the `landgate` volume writable and
//!   replace the launcher for every later restart, probe, hook and
//!   `kubectl exec`.
//!
//! Everything else about a wrapped container (command, env, mounts, probes)
//! is immutable on a pod. landgate's validating webhook runs this check
//! after every mutating webhook, so a later one cannot slip a change past
//! it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::derive;
use crate::ephemeral::{self, Ephemeral};
use crate::mutate::{self, INIT_CONTAINER_NAME, MutateError, PROFILE_LABEL, PodContext, Status};
use crate::settings::Settings;
use crate::status::carries_launcher;

/// Why an update was admitted, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// The old pod records no wrapped container: nothing to guard.
    NotWrapped,
    /// The pod is wrapped and the update leaves its sandbox alone.
    SandboxUntouched,
}

impl Admitted {
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotWrapped => "pod update: the pod is not wrapped by landgate",
            Self::SandboxUntouched => "pod update: nothing landgate guards changed",
        }
    }
}

/// Why an update is refused; the message names the pod, the container and
/// the field, and what to do instead.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum UpdateError {
    #[error(
        "pod {pod}: this update {what} annotation {status}, landgate's record of which containers it wrapped; landgate writes it once, when the pod is created, and refuses any later change. Leave the annotation as it is; to change how the pod is sandboxed, re-create it"
    )]
    Status {
        pod: String,
        what: &'static str,
        status: &'static str,
    },
    #[error(
        "pod {pod}: this update adds annotation {status} recording wrapped containers, but landgate did not wrap this pod; only landgate writes that annotation, when it creates a wrapped pod. Remove it from the update"
    )]
    ForgedStatus { pod: String, status: &'static str },
    #[error(
        "pod {pod}: this update changes init container {container:?} ({field}) in {fields}; landgate-init installs the launcher that every container of the pod runs through, and a changed landgate-init takes effect whenever the init containers run again. Leave it as landgate wrote it; to move the pod to another launcher image, re-create it (roll out its workload) so that landgate builds landgate-init afresh"
    )]
    InitContainer {
        pod: String,
        container: &'static str,
        field: String,
        fields: String,
    },
    #[error(
        "pod {pod}: this update sets label {label}={value:?} on a pod landgate wrapped; the label opts a pod out when it is created, and on this pod, which stays sandboxed, it would only mislead (and keep it from the mutating webhook's objectSelector). Opt a pod out when creating it (label or annotation {label}: \"false\" in the manifest, where the namespace allows it), then re-create it"
    )]
    OptOutLabel {
        pod: String,
        label: &'static str,
        value: &'static str,
    },
    #[error(
        "pod {pod}: this update changes the image of container {container:?} ({field}) from {from:?} to {to:?}; landgate wrapped that container for the image it admitted (its entrypoint, PATH and working directory, pinned to the digest it looked up), and another image would run under a sandbox built for a different one. Re-create the pod (roll out its workload) to run another image"
    )]
    Image {
        pod: String,
        container: String,
        field: String,
        from: String,
        to: String,
    },
    #[error(
        "pod {pod}: this update changes annotation {key} ({from:?} to {to:?}) of a pod landgate wrapped; the pod's landgate.dev/* settings are read when it is created (its sandbox, what kubectl exec, attach and debug get, within its namespace's floor), and a debug container added later is sandboxed by them too. Leave it as it is; to sandbox the pod differently, re-create it (the namespace's owner can tighten every pod at once)"
    )]
    Setting {
        pod: String,
        key: String,
        from: String,
        to: String,
    },
    #[error(
        "pod {pod}: this update changes label {label} ({from:?} to {to:?}), landgate's summary of how the pod is sandboxed; only landgate writes it, when the pod is created. Leave it as it is"
    )]
    ProfileLabel {
        pod: String,
        label: &'static str,
        from: String,
        to: String,
    },
    #[error(
        "pod {pod}: this update adds ephemeral container {container:?} ({field}), and {why}. To debug a sandboxed pod, kubectl exec into one of its containers (the exec runs in that container's sandbox)"
    )]
    EphemeralContainer {
        pod: String,
        container: String,
        field: String,
        /// Why it is refused, the exec policy and its origin included.
        why: String,
    },
    #[error(
        "pod {pod}: ephemeral container {container:?} ({field}) sets no command, and the entrypoint of its image {image:?} is unknown: {why}. landgate runs a debug container in the pod's sandbox or not at all; name what it runs: kubectl debug … --image {image} -- sh"
    )]
    DebugEntrypoint {
        pod: String,
        container: String,
        field: String,
        image: String,
        why: String,
    },
    /// An annotation that cannot be read (the engine's message).
    #[error("pod {pod}: {error}")]
    Annotation {
        pod: String,
        error: Box<derive::AnnotationError>,
    },
    /// A new ephemeral container that cannot be wrapped (its mounts, its
    /// PATH under `required`, …), or a pod the mutating pass cannot read:
    /// the engine's own check and message.
    #[error(transparent)]
    Container(MutateError),
}

impl UpdateError {
    /// The refusal's metrics label ([`MutateError::reason`]).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Status { .. } | Self::ForgedStatus { .. } => "status-changed",
            Self::InitContainer { .. } => "init-container-changed",
            Self::OptOutLabel { .. } => "opt-out-label",
            Self::ProfileLabel { .. } => "profile-label-changed",
            Self::Setting { .. } => "setting-changed",
            Self::EphemeralContainer { .. } => "ephemeral-container",
            Self::DebugEntrypoint { .. } => "unknown-entrypoint",
            Self::Annotation { error, .. } => error.reason(),
            Self::Image { .. } => "image-changed",
            Self::Container(error) => error.reason(),
        }
    }
}

/// The label value the shipped objectSelector (`NotIn ["false"]`) skips.
const OPT_OUT_VALUE: &str = "false";

/// Decides an UPDATE of a pod (plain, or through `pods/ephemeralcontainers`)
/// in `context` (its images are not needed): `Ok` admits it unchanged.
pub fn check_update(
    settings: &Settings,
    context: PodContext<'_>,
    old: &Pod,
    new: &Pod,
) -> Result<Admitted, UpdateError> {
    let pod = mutate::pod_label(context.namespace, new);
    let old_status = annotation(old, derive::STATUS);
    let new_status = annotation(new, derive::STATUS);
    let (was, is) = (label(old, PROFILE_LABEL), label(new, PROFILE_LABEL));
    if was != is {
        return Err(UpdateError::ProfileLabel {
            pod,
            label: PROFILE_LABEL,
            from: was.unwrap_or_default().to_owned(),
            to: is.unwrap_or_default().to_owned(),
        });
    }
    // Wrapped by its record, or by its spec: annotations can also change
    // through the `pods/status` subresource, which no webhook sees (the
    // kubelet updates it constantly), so a removed status must not turn the
    // guard off while landgate-init and its volume are still there.
    if !records_wrapped(old_status) && !carries_launcher(old) {
        // A status that claims a sandbox the pod does not have would mislead
        // whoever reads it; no legitimate writer adds one after creation.
        if old_status != new_status && records_wrapped(new_status) {
            return Err(UpdateError::ForgedStatus {
                pod,
                status: derive::STATUS,
            });
        }
        return Ok(Admitted::NotWrapped);
    }

    if old_status != new_status {
        return Err(UpdateError::Status {
            pod,
            what: if new_status.is_some() {
                "edits"
            } else {
                "removes"
            },
            status: derive::STATUS,
        });
    }
    if label(new, derive::INJECT) == Some(OPT_OUT_VALUE)
        && label(old, derive::INJECT) != Some(OPT_OUT_VALUE)
    {
        return Err(UpdateError::OptOutLabel {
            pod,
            label: derive::INJECT,
            value: OPT_OUT_VALUE,
        });
    }
    if let Some((key, was, is)) = changed_setting(old, new) {
        return Err(UpdateError::Setting {
            pod,
            key: key.to_owned(),
            from: was.unwrap_or_default().to_owned(),
            to: is.unwrap_or_default().to_owned(),
        });
    }
    check_init_container(&pod, old, new)?;
    check_images(&pod, old_status, old, new)?;
    check_ephemeral_containers(settings, context, old, new)
}

/// A wrapped container keeps its image. The API server lets an update
/// change the image of any container, and the kubelet restarts it with the
/// new one; but landgate wrapped it for the image it admitted: an entrypoint
/// written into `command`, a PATH and working directory from its config, a
/// digest pin. Re-resolving on update would need the registry in the update
/// path and still could not re-derive a pod whose command Kubernetes no
/// longer lets change, so the change is refused; workloads roll out new
/// pods, which landgate wraps afresh.
fn check_images(
    pod: &str,
    old_status: Option<&str>,
    old: &Pod,
    new: &Pod,
) -> Result<(), UpdateError> {
    let (Some(before), Some(after)) = (old.spec.as_ref(), new.spec.as_ref()) else {
        return Ok(());
    };
    // The recorded containers; every one when the record is gone (a wrapped
    // pod is wrapped whole).
    let recorded = old_status
        .and_then(|raw| mutate::parse_status(raw).ok())
        .map(|status| status.containers)
        .filter(|containers| !containers.is_empty());
    let guarded = |name: &str| {
        name != INIT_CONTAINER_NAME
            && recorded
                .as_ref()
                .is_none_or(|containers| containers.contains_key(name))
    };
    let lists = [
        (
            "initContainers",
            before.init_containers.as_deref(),
            after.init_containers.as_deref(),
        ),
        (
            "containers",
            Some(before.containers.as_slice()),
            Some(after.containers.as_slice()),
        ),
    ];
    for (list, before, after) in lists {
        for (index, container) in after.unwrap_or_default().iter().enumerate() {
            if !guarded(&container.name) {
                continue;
            }
            let was = before
                .unwrap_or_default()
                .iter()
                .find(|c| c.name == container.name)
                .and_then(|c| c.image.as_deref());
            let now = container.image.as_deref();
            if was != now {
                return Err(UpdateError::Image {
                    pod: pod.to_owned(),
                    container: container.name.clone(),
                    field: format!("spec.{list}[{index}].image"),
                    from: was.unwrap_or_default().to_owned(),
                    to: now.unwrap_or_default().to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// landgate-init must stay exactly what the old pod had.
fn check_init_container(pod: &str, old: &Pod, new: &Pod) -> Result<(), UpdateError> {
    let find = |p: &Pod| {
        p.spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten())
            .enumerate()
            .find(|(_, c)| c.name == INIT_CONTAINER_NAME)
            .map(|(i, c)| (i, c.clone()))
    };
    let (old_init, new_init) = (find(old), find(new));
    if old_init.as_ref().map(|(_, c)| c) == new_init.as_ref().map(|(_, c)| c) {
        return Ok(());
    }
    let (field, fields) = match (&old_init, &new_init) {
        (Some((_, before)), Some((index, after))) => (
            format!("spec.initContainers[{index}]"),
            differing_fields(before, after).join(", "),
        ),
        // The API server refuses adding or removing init containers on an
        // update; refused here too, so that no input slips through.
        (Some((index, _)), None) => (
            format!("spec.initContainers[{index}]"),
            "its presence (it was removed)".to_owned(),
        ),
        (None, Some((index, _))) => (
            format!("spec.initContainers[{index}]"),
            "its presence (it was added)".to_owned(),
        ),
        (None, None) => return Ok(()),
    };
    Err(UpdateError::InitContainer {
        pod: pod.to_owned(),
        container: INIT_CONTAINER_NAME,
        field,
        fields,
    })
}

/// The top-level fields (JSON names) in which two containers differ; only
/// on the refusal path.
pub(crate) fn differing_fields(before: &Container, after: &Container) -> Vec<String> {
    let (Ok(serde_json::Value::Object(before)), Ok(serde_json::Value::Object(after))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return vec!["its fields".to_owned()];
    };
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// Every ephemeral container the update adds is landgate's wrapping of it
/// (`ephemeral`), or admitted under `landgate.dev/exec: allow`; refused
/// under `deny`. Those already there were admitted before. The pod is read
/// only when one is added, so that a bad annotation blocks debug
/// containers, not every other update of the pod (finalizers included).
fn check_ephemeral_containers(
    settings: &Settings,
    context: PodContext<'_>,
    old: &Pod,
    new: &Pod,
) -> Result<Admitted, UpdateError> {
    if !ephemeral::adds_any(old, new) {
        return Ok(Admitted::SandboxUntouched);
    }
    if let Some(containers) = Ephemeral::read(settings, context, new)? {
        containers.check(old)?;
    }
    Ok(Admitted::SandboxUntouched)
}

/// The first `landgate.dev/*` annotation (the status aside, checked on its
/// own) that differs between `old` and `new`: its key, and both values.
/// Frozen on a wrapped pod because the settings they hold are read again
/// whenever `kubectl debug` adds a container (security review: a pod
/// loosened its profile after creation, and its next debug container got
/// the looser sandbox).
fn changed_setting<'a>(
    old: &'a Pod,
    new: &'a Pod,
) -> Option<(&'a str, Option<&'a str>, Option<&'a str>)> {
    let settings = |pod: &'a Pod| {
        pod.metadata
            .annotations
            .iter()
            .flat_map(BTreeMap::keys)
            .filter(|k| k.starts_with(derive::ANNOTATION_PREFIX) && *k != derive::STATUS)
    };
    settings(old)
        .chain(settings(new))
        .map(String::as_str)
        .find(|key| annotation(old, key) != annotation(new, key))
        .map(|key| (key, annotation(old, key), annotation(new, key)))
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Whether a status annotation records wrapped containers. One that does
/// not parse records none: landgate never admits such a pod wrapped.
fn records_wrapped(raw: Option<&str>) -> bool {
    raw.and_then(|raw| mutate::parse_status(raw).ok())
        .is_some_and(|status: Status| !status.containers.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutate::{Outcome, PodContext};
    use crate::settings::Settings;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    const NAMESPACE: &str = "shop";

    /// A pod as landgate stored it: `simple` through the real engine.
    fn wrapped() -> Value {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [{
                    "name": "app",
                    "image": "busybox:1.36",
                    "command": ["sleep", "3600"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }],
            },
        }))
        .unwrap();
        let annotations = BTreeMap::new();
        let context = PodContext {
            namespace: NAMESPACE,
            namespace_annotations: &annotations,
            images: crate::mutate::NO_IMAGES,
        };
        let mutation = mutate::mutate_pod(&Settings::default(), context, &pod).unwrap();
        assert_eq!(mutation.outcome, Outcome::Wrapped);
        serde_json::to_value(crate::patch::apply(&pod, &mutation.patch).unwrap()).unwrap()
    }

    fn unwrapped() -> Value {
        json!({
            "metadata": {"name": "plain"},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
        })
    }

    /// Checked in a namespace that allows unsandboxed debug containers
    /// (`landgate.dev/exec: allow`), so that what else is checked shows;
    /// the default is `the_default_refuses_debug_containers`.
    fn check(old: &Value, new: &Value) -> Result<Admitted, UpdateError> {
        check_in(&[(derive::EXEC, "allow")], old, new)
    }

    fn check_in(
        namespace: &[(&str, &str)],
        old: &Value,
        new: &Value,
    ) -> Result<Admitted, UpdateError> {
        let namespace: BTreeMap<String, String> = namespace
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let context = PodContext {
            namespace: NAMESPACE,
            namespace_annotations: &namespace,
            images: crate::mutate::NO_IMAGES,
        };
        check_update(
            &Settings::default(),
            context,
            &serde_json::from_value(old.clone()).unwrap(),
            &serde_json::from_value(new.clone()).unwrap(),
        )
    }

    /// `old`, changed by `edit`, checked as an update of `old`.
    fn update(old: Value, edit: impl FnOnce(&mut Value)) -> Result<Admitted, UpdateError> {
        let mut new = old.clone();
        edit(&mut new);
        check(&old, &new)
    }

    fn refusal(result: Result<Admitted, UpdateError>) -> String {
        match result {
            Ok(admitted) => panic!("admitted ({admitted:?}), expected a refusal"),
            Err(err) => err.to_string(),
        }
    }

    fn debugger(mounts: Value) -> Value {
        json!({
            "name": "debugger",
            "image": "busybox:1.36",
            "command": ["sh"],
            "stdin": true,
            "tty": true,
            "targetContainerName": "app",
            "volumeMounts": mounts,
        })
    }

    #[test]
    fn an_unchanged_wrapped_pod_is_admitted() {
        let pod = wrapped();
        assert_eq!(check(&pod, &pod), Ok(Admitted::SandboxUntouched));
    }

    #[rstest::rstest]
    #[case::edited(json!("{\"version\":1,\"skipped\":\"opted out\"}"), "edits")]
    #[case::emptied(json!(""), "edits")]
    #[case::removed(Value::Null, "removes")]
    fn the_status_may_not_change(#[case] status: Value, #[case] what: &str) {
        let message = refusal(update(wrapped(), |pod| {
            let annotations = pod["metadata"]["annotations"].as_object_mut().unwrap();
            match status {
                Value::Null => annotations.remove(derive::STATUS),
                status => annotations.insert(derive::STATUS.into(), status),
            };
        }));
        assert!(message.starts_with("pod shop/web: "), "{message}");
        assert!(
            message.contains(&format!("{what} annotation landgate.dev/status")),
            "{message}"
        );
        assert!(message.contains("re-create it"), "{message}");
    }

    #[test]
    fn the_status_may_not_be_re_recorded_with_another_hash() {
        let message = refusal(update(wrapped(), |pod| {
            let raw = pod["metadata"]["annotations"][derive::STATUS]
                .as_str()
                .unwrap()
                .to_owned();
            let mut status: Value = serde_json::from_str(&raw).unwrap();
            status["containers"]["app"]["hash"] = json!(format!("sha256:{}", "0".repeat(64)));
            pod["metadata"]["annotations"][derive::STATUS] = json!(status.to_string());
        }));
        assert!(
            message.contains("edits annotation landgate.dev/status"),
            "{message}"
        );
    }

    #[rstest::rstest]
    #[case::image("image", json!("evil.example/launcher:latest"))]
    #[case::command("command", json!(["/bin/sh", "-c", "cp /evil /landgate/landgate"]))]
    #[case::pull_policy("imagePullPolicy", json!("Always"))]
    fn landgate_init_may_not_change(#[case] field: &str, #[case] value: Value) {
        let message = refusal(update(wrapped(), |pod| {
            pod["spec"]["initContainers"][0][field] = value;
        }));
        assert!(
            message.contains(&format!(
                "init container \"landgate-init\" (spec.initContainers[0]) in {field};"
            )),
            "{message}"
        );
        assert!(message.contains("re-create it"), "{message}");
    }

    #[test]
    fn landgate_init_names_every_changed_field() {
        let message = refusal(update(wrapped(), |pod| {
            pod["spec"]["initContainers"][0]["image"] = json!("evil:1");
            pod["spec"]["initContainers"][0]["workingDir"] = json!("/tmp");
        }));
        assert!(message.contains("in image, workingDir;"), "{message}");
    }

    #[test]
    fn landgate_init_may_not_go() {
        let message = refusal(update(wrapped(), |pod| {
            pod["spec"]["initContainers"] = json!([]);
        }));
        assert!(message.contains("it was removed"), "{message}");
    }

    #[test]
    fn wrapped_container_images_may_not_change() {
        let result = update(wrapped(), |pod| {
            pod["spec"]["containers"][0]["image"] = json!("busybox:1.37");
        });
        assert!(
            matches!(result, Err(UpdateError::Image { .. })),
            "{result:?}"
        );
        let message = refusal(result);
        for part in [
            "container \"app\" (spec.containers[0].image)",
            "from \"busybox:1.36\" to \"busybox:1.37\"",
            "Re-create the pod",
        ] {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
    }

    /// Annotations also change through `pods/status`, which no webhook
    /// sees: a wrapped pod whose record was removed that way is still
    /// guarded by what its spec carries (security review).
    #[test]
    fn a_wrapped_pod_stays_guarded_when_its_status_is_gone() {
        let mut old = wrapped();
        old["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(derive::STATUS);
        let swap_init = update(old.clone(), |pod| {
            pod["spec"]["initContainers"][0]["image"] = json!("evil/launcher:1");
        });
        assert!(
            matches!(swap_init, Err(UpdateError::InitContainer { .. })),
            "{swap_init:?}"
        );
        let swap_app = update(old, |pod| {
            pod["spec"]["containers"][0]["image"] = json!("evil/app:1");
        });
        assert!(
            matches!(swap_app, Err(UpdateError::Image { .. })),
            "{swap_app:?}"
        );
    }

    /// A wrapped pod's landgate.dev/* settings are set at creation: an
    /// update may not turn exec into `allow` (security review), nor loosen
    /// the profile a later debug container would get (second review), nor
    /// add or remove one.
    #[rstest::rstest]
    #[case::exec_allow(derive::EXEC, Some("allow"))]
    #[case::profile_loosened(derive::PROFILE, Some("ports-only"))]
    #[case::io_uring_added(derive::IO_URING, Some("allow"))]
    #[case::connect_ports(derive::CONNECT_PORTS, Some("1-65535"))]
    fn the_settings_may_not_change(#[case] key: &str, #[case] value: Option<&str>) {
        let result = update(wrapped(), |pod| {
            pod["metadata"]["annotations"][key] = json!(value);
        });
        assert!(
            matches!(result, Err(UpdateError::Setting { .. })),
            "{result:?}"
        );
        let message = refusal(result);
        assert!(
            message.contains(&format!("changes annotation {key}")),
            "{message}"
        );
        // Removing one is a change too.
        let mut old = wrapped();
        old["metadata"]["annotations"][key] = json!(value);
        let mut new = old.clone();
        new["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(key);
        assert!(matches!(
            check(&old, &new),
            Err(UpdateError::Setting { .. })
        ));
    }

    /// A bad exec value on the namespace blocks debug containers only, not
    /// every update of the pod (security review: finalizers stuck).
    #[test]
    fn a_bad_namespace_exec_value_blocks_only_debug_containers() {
        let bad = [(derive::EXEC, "ALLOW")];
        let old = wrapped();
        let mut labelled = old.clone();
        labelled["metadata"]["labels"]["tier"] = json!("front");
        assert_eq!(
            check_in(&bad, &old, &labelled),
            Ok(Admitted::SandboxUntouched)
        );
        let mut debugged = old.clone();
        debugged["spec"]["ephemeralContainers"] = json!([debugger(json!(null))]);
        let message = refusal(check_in(&bad, &old, &debugged));
        assert!(message.contains("namespace shop"), "{message}");
    }

    /// The profile label is landgate's record too, on any pod.
    #[test]
    fn the_profile_label_may_not_change() {
        for old in [wrapped(), unwrapped()] {
            let result = update(old, |pod| {
                pod["metadata"]["labels"][PROFILE_LABEL] = json!("strict");
            });
            assert!(
                matches!(result, Err(UpdateError::ProfileLabel { .. })),
                "{result:?}"
            );
            assert!(refusal(result).contains("landgate.dev/profile"));
        }
        let removed = update(wrapped(), |pod| {
            pod["metadata"]["labels"]
                .as_object_mut()
                .unwrap()
                .remove(PROFILE_LABEL);
        });
        assert!(refusal(removed).contains("to \"\""));
    }

    /// What else Kubernetes lets an update change on a running pod
    /// (activeDeadlineSeconds, tolerations added) leaves the sandbox alone.
    #[test]
    fn a_wrapped_pods_unchanged_images_pass_with_other_changes() {
        let result = update(wrapped(), |pod| {
            pod["spec"]["activeDeadlineSeconds"] = json!(600);
            pod["spec"]["tolerations"] = json!([{"key": "spot", "operator": "Exists"}]);
        });
        assert_eq!(result, Ok(Admitted::SandboxUntouched));
    }

    #[test]
    fn other_metadata_may_change() {
        let result = update(wrapped(), |pod| {
            pod["metadata"]["labels"]["tier"] = json!("front");
            pod["metadata"]["labels"][derive::INJECT] = json!("enabled");
            pod["metadata"]["annotations"]["example.com/owner"] = json!("alice");
        });
        assert_eq!(result, Ok(Admitted::SandboxUntouched));
    }

    #[test]
    fn the_opt_out_label_may_not_be_added() {
        let message = refusal(update(wrapped(), |pod| {
            pod["metadata"]["labels"][derive::INJECT] = json!("false");
        }));
        assert!(
            message.contains("sets label landgate.dev/inject=\"false\""),
            "{message}"
        );
        assert!(message.contains("objectSelector"), "{message}");
    }

    #[test]
    fn a_plain_debug_container_is_admitted() {
        // What `kubectl debug -it web --image=busybox:1.36 --target=app` adds.
        let result = update(wrapped(), |pod| {
            pod["spec"]["ephemeralContainers"] = json!([debugger(json!(null))]);
        });
        assert_eq!(result, Ok(Admitted::SandboxUntouched));
    }

    /// An ephemeral container that is not landgate's wrapping of it is
    /// refused under the default `sandboxed` (the mutating webhook did not
    /// wrap it), and any under `deny`, naming the setting (issue 12:
    /// `kubectl debug` ran an unsandboxed process in a sandboxed pod).
    #[rstest::rstest]
    #[case::default(&[], "landgate.dev/exec is \"sandboxed\" by default")]
    #[case::deny(&[(derive::EXEC, "deny")], "annotation landgate.dev/exec on namespace shop = \"deny\"")]
    fn the_default_refuses_debug_containers(
        #[case] namespace: &[(&str, &str)],
        #[case] said: &str,
    ) {
        let old = wrapped();
        let mut new = old.clone();
        new["spec"]["ephemeralContainers"] = json!([debugger(json!(null))]);
        let result = check_in(namespace, &old, &new);
        assert!(
            matches!(result, Err(UpdateError::EphemeralContainer { .. })),
            "{result:?}"
        );
        let message = refusal(result);
        for part in [
            "ephemeral container \"debugger\" (spec.ephemeralContainers[0])",
            said,
            "kubectl exec into one of its containers",
        ] {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
        // An unwrapped pod is not landgate's to guard.
        let plain = unwrapped();
        let mut debugged = plain.clone();
        debugged["spec"]["ephemeralContainers"] = json!([debugger(json!(null))]);
        assert_eq!(
            check_in(namespace, &plain, &debugged),
            Ok(Admitted::NotWrapped)
        );
    }

    #[test]
    fn a_debug_container_may_mount_the_pods_own_volumes() {
        let result = update(wrapped(), |pod| {
            pod["spec"]["ephemeralContainers"] =
                json!([debugger(json!([{"name": "data", "mountPath": "/data"}]))]);
        });
        assert_eq!(result, Ok(Admitted::SandboxUntouched));
    }

    #[rstest::rstest]
    #[case::launcher_volume_rw(json!([{"name": "landgate", "mountPath": "/lg"}]), "mounts volume \"landgate\"")]
    #[case::launcher_volume_ro(
        json!([{"name": "landgate", "mountPath": "/landgate", "readOnly": true}]),
        "mounts volume \"landgate\""
    )]
    #[case::under_launcher_dir(json!([{"name": "data", "mountPath": "/landgate/x"}]), "landgate reserves")]
    #[case::relative(json!([{"name": "data", "mountPath": "landgate/bin"}]), "landgate reserves")]
    #[case::parent_dir(json!([{"name": "data", "mountPath": "/x/../landgate"}]), "`..`")]
    #[case::nested(
        json!([
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/data/sub"},
        ]),
        "whose content the pod controls"
    )]
    fn a_debug_container_may_not_reach_the_launcher(#[case] mounts: Value, #[case] needle: &str) {
        let old = wrapped();
        let mut new = old.clone();
        new["spec"]["ephemeralContainers"] = json!([debugger(mounts)]);
        let message = refusal(check(&old, &new));
        assert!(message.contains(needle), "{message}");
        assert!(message.contains("pod shop/web"), "{message}");
        assert!(
            message.contains("\"debugger\" (spec.ephemeralContainers[0]"),
            "{message}"
        );
    }

    #[test]
    fn a_launcher_volume_device_is_refused() {
        let message = refusal(update(wrapped(), |pod| {
            let mut debugger = debugger(json!(null));
            debugger["volumeDevices"] = json!([{"name": "landgate", "devicePath": "/dev/lg"}]);
            pod["spec"]["ephemeralContainers"] = json!([debugger]);
        }));
        assert!(message.contains("as a device"), "{message}");
    }

    #[test]
    fn only_new_ephemeral_containers_are_checked() {
        // One admitted before this rule existed stays; the update adds a
        // plain one next to it.
        let mut old = wrapped();
        old["spec"]["ephemeralContainers"] =
            json!([debugger(json!([{"name": "landgate", "mountPath": "/lg"}]))]);
        let mut new = old.clone();
        let mut second = debugger(json!(null));
        second["name"] = json!("debugger-2");
        new["spec"]["ephemeralContainers"]
            .as_array_mut()
            .unwrap()
            .push(second);
        assert_eq!(check(&old, &new), Ok(Admitted::SandboxUntouched));

        // A changed one is checked like a new one (the API server refuses
        // the change anyway).
        let mut changed = old.clone();
        changed["spec"]["ephemeralContainers"][0]["image"] = json!("busybox:1.37");
        assert!(refusal(check(&old, &changed)).contains("spec.ephemeralContainers[0]"));
    }

    #[test]
    fn an_unwrapped_pod_may_change_anything() {
        let old = unwrapped();
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("busybox:1.37");
        new["spec"]["ephemeralContainers"] =
            json!([debugger(json!([{"name": "x", "mountPath": "/landgate"}]))]);
        assert_eq!(check(&old, &new), Ok(Admitted::NotWrapped));
    }

    #[rstest::rstest]
    #[case::skipped(json!({"landgate.dev/status": "{\"version\":1,\"skipped\":\"opted out\"}"}))]
    #[case::unreadable(json!({"landgate.dev/status": "not json"}))]
    fn a_pod_whose_status_records_no_wrapping_is_not_guarded(#[case] annotations: Value) {
        let mut old = unwrapped();
        old["metadata"]["annotations"] = annotations;
        let mut new = old.clone();
        new["metadata"]["annotations"] = json!({});
        assert_eq!(check(&old, &new), Ok(Admitted::NotWrapped));
    }

    #[test]
    fn a_wrapped_status_may_not_be_forged_onto_an_unwrapped_pod() {
        let status = wrapped()["metadata"]["annotations"][derive::STATUS].clone();
        let message = refusal(update(unwrapped(), |pod| {
            pod["metadata"]["annotations"] = json!({derive::STATUS: status});
        }));
        assert!(
            message.contains("pod shop/plain: this update adds"),
            "{message}"
        );
        assert!(
            message.contains("landgate did not wrap this pod"),
            "{message}"
        );
    }
}
