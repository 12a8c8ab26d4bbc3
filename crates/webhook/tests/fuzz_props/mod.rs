//! The properties the fuzz targets check, one copy for two users:
//!
//! - `tests/fuzz_regressions.rs` (`mod fuzz_props;`) replays the committed
//!   findings under `fuzz/regressions/` on the pinned stable toolchain, in CI;
//! - the nightly-only `fuzz/` crate includes this same file with
//!   `#[path = "../../crates/webhook/tests/fuzz_props/mod.rs"]` and calls it from
//!   every target.
//!
//! It lives beside the regression test because CI builds it here and the
//! webhook must not depend on the fuzz crate (libFuzzer needs nightly). It
//! is a directory module so that cargo does not take it for a test target
//! of its own, and it uses only crates both sides have (the webhook's own
//! dependencies). The structure-aware models stay in `fuzz/`: what they
//! produce reaches this file as plain data ([`PodCase`], [`AnnotationCase`],
//! which the regression corpus stores as JSON).
//!
//! Each check returns `Err(the violated property)`; a panic inside the code
//! under test is a finding as well. The fuzz targets panic on `Err`; the
//! regression test collects every failing input.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use landgate_engine::Outcome;
use landgate_engine::derive::{self, Annotations};
use landgate_engine::mount_path;
use landgate_engine::mutate::{
    self, INIT_CONTAINER_NAME, LAUNCHER, Mutation, PodContext, WRAPPER_DIR,
};
use landgate_engine::settings::Settings;
use landgate_policy::env::ACTIVE as ACTIVE_ENV;
use landgate_policy::{AbsPath, POLICY_ENV, Policy};
use landgate_webhook::admission;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a check found wrong.
pub type Checked = Result<(), String>;

/// What `/landgate/landgate exec --` looks like in a wrapped command.
const EXEC_PREFIX: [&str; 3] = [LAUNCHER, "exec", "--"];

fn ensure(holds: bool, violation: impl FnOnce() -> String) -> Checked {
    if holds { Ok(()) } else { Err(violation()) }
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| panic!("k8s-openapi types serialize: {e}"))
}

// === AdmissionReview → engine ===

/// Namespace annotations for fuzzed reviews: a few namespaces carry the
/// middle layer of the settings precedence, so that a review's namespace
/// changes what the engine decides; namespace "unknown" is not in the
/// cache.
pub fn namespace_annotations(namespace: &str) -> Option<BTreeMap<String, String>> {
    let (key, value) = match namespace {
        "strict" => (derive::PROFILE, "strict"),
        "required" => (derive::ENFORCEMENT, "required"),
        "opted-out" => (derive::INJECT, "false"),
        "typo" => ("landgate.dev/profil", "strict"),
        "unknown" => return None,
        _ => return Some(BTreeMap::new()),
    };
    Some(BTreeMap::from([(key.to_owned(), value.to_owned())]))
}

/// Raw bytes as the API server's request body: no panic; an answer is a v1
/// AdmissionReview that echoes the uid, whose outcome agrees with
/// `allowed`, and whose patch (base64, as Go's `[]byte`) applies to the
/// object the API server sent and leaves a Pod.
pub fn admission_review(body: &[u8]) -> Checked {
    let Ok(reviewed) = admission::review(&Settings::default(), &namespace_annotations, body) else {
        return Ok(());
    };
    let answer: Value = serde_json::from_slice(&reviewed.body())
        .map_err(|e| format!("the answer is not JSON: {e}"))?;
    // serde_json skips the fields a type ignores without checking their
    // UTF-8, so review() reads some bodies a Value cannot hold; the API
    // server only sends valid JSON.
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    ensure(answer["apiVersion"] == "admission.k8s.io/v1", || {
        format!("the answer's apiVersion is {}", answer["apiVersion"])
    })?;
    // The answer echoes the request's kind (kube-core copies its TypeMeta),
    // which review() does not check; the API server always sends this one.
    if request["kind"] == "AdmissionReview" {
        ensure(answer["kind"] == "AdmissionReview", || {
            format!("the answer's kind is {}", answer["kind"])
        })?;
    }
    let response = &answer["response"];
    ensure(response["uid"] == request["request"]["uid"], || {
        format!(
            "the answer's uid {} is not the request's {}",
            response["uid"], request["request"]["uid"]
        )
    })?;
    let allowed = response["allowed"]
        .as_bool()
        .ok_or_else(|| format!("`allowed` is not a bool: {}", response["allowed"]))?;
    let expected = !matches!(
        reviewed.outcome,
        Outcome::Refused { .. } | Outcome::Failed(_)
    );
    ensure(allowed == expected, || {
        format!("outcome {:?} but allowed = {allowed}", reviewed.outcome)
    })?;
    let Some(patch) = response.get("patch") else {
        return ensure(reviewed.outcome != Outcome::Wrapped, || {
            "a mutated pod's answer carries no patch".to_owned()
        });
    };
    ensure(allowed, || "a refusal carries a patch".to_owned())?;
    ensure(response["patchType"] == "JSONPatch", || {
        format!("patchType is {}", response["patchType"])
    })?;
    let encoded = patch
        .as_str()
        .ok_or_else(|| format!("the patch is not a base64 string: {patch}"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("the patch is not base64: {e}"))?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the patch is not an RFC 6902 patch: {e}"))?;
    ensure(Some(&bytes) == reviewed.response.patch.as_ref(), || {
        "the answer's patch is not the response's".to_owned()
    })?;
    // The API server applies the patch to the object as it sent it, not to
    // the engine's typed copy of it. It always sends the object's own
    // apiVersion and kind, and `metadata` (Go's ObjectMeta is a struct,
    // never omitted), and never repeats a key; the engine is lenient with
    // objects that lack them, which only other clients send.
    let mut object = request["request"]["object"].clone();
    let as_sent = object["apiVersion"] == "v1"
        && object["kind"] == "Pod"
        && object["metadata"].is_object()
        && !has_duplicate_keys(body);
    if !as_sent {
        return Ok(());
    }
    json_patch::patch(&mut object, &patch)
        .map_err(|e| format!("the patch does not apply to the request's object: {e}"))?;
    serde_json::from_value::<Pod>(object)
        .map_err(|e| format!("the patched object is not a Pod: {e}"))?;
    Ok(())
}

/// True when some JSON object in `body` repeats a key: parsers disagree on
/// which copy counts (a `Value` keeps the last, serde's derive refuses the
/// repeat or, under `flatten`, may keep another), so no property comparing
/// two parses of it holds.
fn has_duplicate_keys(body: &[u8]) -> bool {
    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(Unique)
        }
    }
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut keys = BTreeSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !keys.insert(key) {
                    return Err(serde::de::Error::custom("repeated key"));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
    }
    serde_json::from_slice::<Unique>(body).is_err()
}

// === the mutation engine ===

/// A pod as admitted: what the structure-aware target generates and the
/// regression corpus stores (`fuzz/regressions/pod_model/*.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodCase {
    pub namespace: String,
    #[serde(default)]
    pub namespace_annotations: BTreeMap<String, String>,
    pub pod: Pod,
}

/// The engine's answer with the pod its patch gives (the engine itself
/// never computes it).
pub struct Applied {
    pub outcome: Outcome,
    pub patch: json_patch::Patch,
    pub pod: Pod,
    pub policies: BTreeMap<String, landgate_policy::Policy>,
}

impl Applied {
    fn new(m: Mutation, pod: Pod) -> Self {
        Self {
            outcome: m.outcome,
            patch: m.patch,
            pod,
            policies: m.policies,
        }
    }
}

/// The engine on one pod: no panic; on `Ok`, the patch applies to the pod's
/// JSON and gives the reported pod; a wrapped pod is wrapped entirely
/// ([`wrapped_entirely`]), a skipped one untouched or entirely unwrapped
/// ([`skipped`]); the engine writes no metadata but its status annotation
/// and profile label;
/// and a second pass over the result changes nothing (the mutate.rs module
/// docs: "A pod that already looks exactly as landgate would make it gets
/// an empty patch"). Returns the first pass's mutation, for reinvocation.
pub fn pod_case(case: &PodCase) -> Result<Option<Applied>, String> {
    let settings = Settings::default();
    let context = PodContext {
        namespace: &case.namespace,
        namespace_annotations: &case.namespace_annotations,
        images: landgate_engine::mutate::NO_IMAGES,
    };
    let Ok(first) = mutate::mutate_pod(&settings, context, &case.pod) else {
        return Ok(None);
    };

    let mut doc = json(&case.pod);
    json_patch::patch(&mut doc, &first.patch)
        .map_err(|e| format!("the patch does not apply to the pod: {e}"))?;
    let patched: Pod = serde_json::from_value(doc.clone())
        .map_err(|e| format!("the patched pod does not deserialize as a Pod: {e}"))?;
    ensure(json(&patched) == doc, || {
        "the patched pod does not survive a Pod round trip".to_owned()
    })?;
    ensure(
        without_status(&case.pod.metadata) == without_status(&patched.metadata),
        || {
            "the engine changed metadata other than landgate.dev/status and the landgate.dev/profile label".to_owned()
        },
    )?;

    let first = Applied::new(first, patched.clone());
    match &first.outcome {
        Outcome::Wrapped => {
            ensure(!first.patch.0.is_empty(), || {
                "outcome Wrapped with an empty patch".to_owned()
            })?;
            wrapped_entirely(&first)?;
        }
        Outcome::AlreadyWrapped => {
            ensure(first.patch.0.is_empty(), || {
                "outcome AlreadyWrapped with a non-empty patch".to_owned()
            })?;
            wrapped_entirely(&first)?;
        }
        Outcome::Skipped(reason) => skipped(&case.pod, &first, reason)?,
        other => return Err(format!("the engine answered a pod with {other:?}")),
    }

    let second = mutate::mutate_pod(&settings, context, &first.pod)
        .map_err(|e| format!("the second pass refuses the mutated pod: {e}"))?;
    ensure(second.patch.0.is_empty(), || {
        format!(
            "the second pass patches again: {}",
            serde_json::to_string(&second.patch).unwrap_or_default()
        )
    })?;
    let expected = match &first.outcome {
        Outcome::Wrapped | Outcome::AlreadyWrapped => Outcome::AlreadyWrapped,
        skipped => skipped.clone(),
    };
    ensure(second.outcome == expected, || {
        format!(
            "second pass outcome {:?} after {:?}",
            second.outcome, first.outcome
        )
    })?;
    ensure(second.policies == first.policies, || {
        "the second pass derives other policies".to_owned()
    })?;
    Ok(Some(first))
}

/// The metadata without what landgate writes (status annotation, profile
/// label), and without the maps that held only that.
fn without_status(metadata: &ObjectMeta) -> Value {
    let mut metadata = metadata.clone();
    for (map, key) in [
        (&mut metadata.annotations, derive::STATUS),
        (&mut metadata.labels, mutate::PROFILE_LABEL),
    ] {
        if let Some(entries) = map.as_mut() {
            entries.remove(key);
        }
        if map.as_ref().is_some_and(BTreeMap::is_empty) {
            *map = None;
        }
    }
    json(&metadata)
}

fn status_of(pod: &Pod) -> Option<Result<mutate::Status, String>> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(derive::STATUS))
        .map(|raw| mutate::parse_status(raw))
}

/// Every container but landgate-init runs through the launcher, reads a
/// policy the launcher accepts, cannot reach the launcher volume other than
/// through the one read-only mount, and finds the wrappers first on PATH.
fn wrapped_entirely(m: &Applied) -> Checked {
    let spec = m.pod.spec.as_ref().ok_or("a wrapped pod has no spec")?;
    let init = spec.init_containers.as_deref().unwrap_or_default();
    ensure(
        init.first().is_some_and(|c| c.name == INIT_CONTAINER_NAME),
        || "landgate-init is not the first init container".to_owned(),
    )?;
    let named = named_init(&m.pod);
    ensure(named == 1, || {
        format!("{named} containers are named landgate-init; only landgate's may be")
    })?;
    let launcher_volumes: Vec<_> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.name == mutate::VOLUME_NAME)
        .collect();
    ensure(launcher_volumes == [&mutate::launcher_volume()], || {
        format!("the pod's landgate volumes are {launcher_volumes:?}, not landgate's one emptyDir")
    })?;

    let wrapped: Vec<&Container> = init.iter().skip(1).chain(&spec.containers).collect();
    let names: Vec<&str> = wrapped.iter().map(|c| c.name.as_str()).collect();
    let policy_names: Vec<&str> = m.policies.keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    ensure(sorted == policy_names, || {
        format!("wrapped containers {names:?} but policies for {policy_names:?}")
    })?;
    for c in wrapped {
        wrapped_container(c, &m.policies[&c.name])
            .map_err(|e| format!("container {:?}: {e}", c.name))?;
    }

    for e in spec.ephemeral_containers.iter().flatten() {
        for mount in e.volume_mounts.iter().flatten() {
            ensure(
                mount.name != mutate::VOLUME_NAME && !reaches_launcher_dir(&mount.mount_path),
                || format!("ephemeral container {:?} mounts {mount:?}", e.name),
            )?;
        }
    }

    let status = status_of(&m.pod)
        .ok_or("a wrapped pod has no landgate.dev/status")?
        .map_err(|e| format!("its own landgate.dev/status does not parse: {e}"))?;
    let recorded: Vec<&str> = status.containers.keys().map(String::as_str).collect();
    ensure(recorded == policy_names && status.skipped.is_none(), || {
        format!(
            "the status records {recorded:?} (skipped {:?}) for a pod wrapping {policy_names:?}",
            status.skipped
        )
    })
}

/// How many containers (of every list) are named landgate-init.
fn named_init(pod: &Pod) -> usize {
    let Some(spec) = &pod.spec else {
        return 0;
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter(|c| c.name == INIT_CONTAINER_NAME)
        .count()
}

fn reaches_launcher_dir(mount_path: &str) -> bool {
    // A path that does not normalise is refused in a wrapped pod; here it
    // counts as reaching the launcher: it should not be there at all.
    mount_path::normalise(mount_path)
        .as_ref()
        .map_or(true, derive::in_launcher_dir)
}

fn wrapped_container(c: &Container, policy: &Policy) -> Checked {
    let command = c.command.as_deref().unwrap_or_default();
    ensure(has_exec_prefix(command), || {
        format!("command {command:?} does not run through the launcher")
    })?;
    for handler in exec_commands(c) {
        ensure(has_exec_prefix(handler), || {
            format!("exec probe or hook {handler:?} does not run through the launcher")
        })?;
    }

    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let launcher_mounts: Vec<_> = mounts
        .iter()
        .filter(|m| m.name == mutate::VOLUME_NAME)
        .collect();
    ensure(launcher_mounts == [&mutate::launcher_mount()], || {
        format!(
            "mounts of the landgate volume are {launcher_mounts:?}, not one read-only at /landgate"
        )
    })?;
    for mount in mounts.iter().filter(|m| m.name != mutate::VOLUME_NAME) {
        ensure(!reaches_launcher_dir(&mount.mount_path), || {
            format!("mount {mount:?} reaches the launcher directory")
        })?;
    }
    for device in c.volume_devices.iter().flatten() {
        ensure(device.name != mutate::VOLUME_NAME, || {
            "uses the landgate volume as a device".to_owned()
        })?;
    }

    let env = c.env.as_deref().unwrap_or_default();
    let landgate: Vec<_> = env
        .iter()
        .filter(|e| e.name.starts_with("LANDGATE_"))
        .collect();
    let policies: Vec<_> = landgate.iter().filter(|e| e.name == POLICY_ENV).collect();
    let markers: Vec<_> = landgate.iter().filter(|e| e.name == ACTIVE_ENV).collect();
    ensure(
        policies.len() == 1 && markers.len() == 1 && landgate.len() == 2,
        || {
            let names: Vec<&str> = landgate.iter().map(|e| e.name.as_str()).collect();
            format!("LANDGATE_* env is {names:?}, not exactly LANDGATE_POLICY and LANDGATE_ACTIVE")
        },
    )?;
    ensure(
        markers[0].value_from.is_none()
            && markers[0].value.as_deref().unwrap_or_default().is_empty(),
        || format!("{ACTIVE_ENV} is {:?}, not set empty", markers[0]),
    )?;
    let written = match (&policies[0].value, &policies[0].value_from) {
        (Some(value), None) => value,
        _ => {
            return Err(format!(
                "{POLICY_ENV} is not a plain value: {:?}",
                policies[0]
            ));
        }
    };
    let seen = kubelet_expand(written)?;
    let parsed =
        Policy::from_json(&seen).map_err(|e| format!("the launcher refuses its policy: {e}"))?;
    ensure(parsed == *policy, || {
        format!("its policy {seen} is not the reported {}", policy.to_json())
    })?;
    let launcher_dir: AbsPath = derive::LAUNCHER_DIR.parse().map_err(|e| format!("{e}"))?;
    for rw in parsed.fs.iter().flat_map(|fs| &fs.rw) {
        ensure(!rw.is_within(&launcher_dir), || {
            format!("its policy makes {rw} writable, inside the launcher directory")
        })?;
    }

    // The kubelet takes the last PATH. One from valueFrom cannot be
    // prefixed; the engine warns about it instead.
    match env.iter().rev().find(|e| e.name == "PATH") {
        None => Err("it has no PATH, so the wrappers are not on it".to_owned()),
        Some(path) if path.value_from.is_some() => Ok(()),
        Some(path) => {
            let value = path.value.as_deref().unwrap_or_default();
            ensure(value.split(':').next() == Some(WRAPPER_DIR), || {
                format!("PATH {value:?} does not start with {WRAPPER_DIR}")
            })
        }
    }
}

fn has_exec_prefix(command: &[String]) -> bool {
    command.len() > EXEC_PREFIX.len() && command.iter().zip(EXEC_PREFIX).all(|(a, b)| a == b)
}

/// The non-empty commands of a container's exec probes and exec hooks: the
/// kubelet runs them inside the container without its entrypoint.
fn exec_commands(c: &Container) -> Vec<&[String]> {
    let probes = [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
        .into_iter()
        .flatten()
        .filter_map(|p| p.exec.as_ref());
    let hooks = c
        .lifecycle
        .iter()
        .flat_map(|l| [&l.post_start, &l.pre_stop])
        .flatten()
        .filter_map(|h| h.exec.as_ref());
    probes
        .chain(hooks)
        .filter_map(|e| e.command.as_deref())
        .filter(|command| !command.is_empty())
        .collect()
}

/// The value the process gets from an env value the kubelet expands
/// (`$$` → `$`, `$(VAR)` → VAR's value): for the launcher's policy to be
/// the one hashed and previewed, every `$` must be escaped.
fn kubelet_expand(value: &str) -> Result<String, String> {
    let mut seen = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '$' && chars.next() != Some('$') {
            return Err(format!(
                "{POLICY_ENV} has an unescaped `$` that the kubelet would expand: {value}"
            ));
        }
        seen.push(c);
    }
    Ok(seen)
}

/// A skipped pod is untouched, or, when a previous pass wrapped it, unwrapped
/// entirely: never half-wrapped.
fn skipped(input: &Pod, m: &Applied, reason: &str) -> Checked {
    ensure(m.policies.is_empty(), || {
        "a skipped pod has policies".to_owned()
    })?;
    if m.patch.0.is_empty() {
        return Ok(());
    }
    let status = status_of(&m.pod)
        .ok_or("a skipped pod was patched without a landgate.dev/status")?
        .map_err(|e| format!("its own landgate.dev/status does not parse: {e}"))?;
    ensure(
        status.containers.is_empty() && status.skipped.as_deref() == Some(reason),
        || format!("a pod skipped because {reason:?} has status {status:?}"),
    )?;
    let recorded = match status_of(input) {
        Some(Ok(before)) if !before.containers.is_empty() => before.containers,
        _ => {
            return ensure(json(&input.spec) == json(&m.pod.spec), || {
                "the spec of a skipped pod changed".to_owned()
            });
        }
    };
    // landgate's landgate-init and volume go. A container of that name
    // that is not landgate's may stay (a later webhook's, when a pass must
    // skip): the name is reserved only in pods landgate wraps.
    ensure(named_init(&m.pod) + 1 == named_init(input), || {
        "unwrapping did not remove landgate-init".to_owned()
    })?;
    let spec = m.pod.spec.as_ref().ok_or("an unwrapped pod has no spec")?;
    ensure(
        spec.volumes
            .iter()
            .flatten()
            .all(|v| v.name != mutate::VOLUME_NAME),
        || "an unwrapped pod keeps the landgate volume".to_owned(),
    )?;
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for c in init.iter().chain(&spec.containers) {
        if !recorded.contains_key(&c.name) {
            continue;
        }
        let env = c.env.as_deref().unwrap_or_default();
        ensure(
            env.iter()
                .all(|e| e.name != POLICY_ENV && e.name != ACTIVE_ENV),
            || format!("unwrapped container {:?} keeps landgate's env", c.name),
        )?;
        ensure(
            c.volume_mounts
                .iter()
                .flatten()
                .all(|m| *m != mutate::launcher_mount()),
            || format!("unwrapped container {:?} keeps the launcher mount", c.name),
        )?;
    }
    Ok(())
}

// === annotations ===

/// The input of [`Annotations::parse`], as the regression corpus stores it
/// (`fuzz/regressions/annotations/*.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnnotationCase {
    pub pod: BTreeMap<String, String>,
    pub namespace: String,
    pub namespace_annotations: BTreeMap<String, String>,
    pub containers: Vec<String>,
}

/// No panic; on `Ok`, every `landgate.dev/*` key was a known setting (a
/// typo never passes silently), per-container keys name a container of the
/// pod, and each container's settings follow the precedence pod
/// per-container > pod > namespace > flag, with no path in the launcher
/// directory.
pub fn annotation_case(case: &AnnotationCase) -> Checked {
    let containers: Vec<&str> = case.containers.iter().map(String::as_str).collect();
    let Ok(parsed) = Annotations::parse(
        &case.pod,
        &case.namespace,
        &case.namespace_annotations,
        &containers,
    ) else {
        return Ok(());
    };
    let known = |name: &str| {
        derive::Key::ALL
            .iter()
            .any(|k| k.as_str().strip_prefix(derive::ANNOTATION_PREFIX) == Some(name))
    };
    for key in case.pod.keys() {
        let Some(suffix) = key.strip_prefix(derive::ANNOTATION_PREFIX) else {
            continue;
        };
        if key == derive::STATUS {
            continue;
        }
        let (name, container) = match suffix.split_once('.') {
            Some((name, container)) => (name, Some(container)),
            None => (suffix, None),
        };
        ensure(known(name), || {
            format!("pod annotation {key:?} was accepted")
        })?;
        if let Some(container) = container {
            ensure(
                key_of(name) != derive::INJECT && containers.contains(&container),
                || format!("pod annotation {key:?} was accepted for containers {containers:?}"),
            )?;
        }
    }
    for key in case.namespace_annotations.keys() {
        if let Some(suffix) = key.strip_prefix(derive::ANNOTATION_PREFIX) {
            ensure(known(suffix), || {
                format!("namespace annotation {key:?} was accepted")
            })?;
        }
    }

    let settings = Settings::default();
    let launcher_dir: AbsPath = derive::LAUNCHER_DIR.parse().map_err(|e| format!("{e}"))?;
    for name in containers.iter().copied().chain(["not-a-container"]) {
        let resolved = parsed.for_container(&settings, name);
        let profile =
            lookup(case, derive::PROFILE, Some(name)).unwrap_or(settings.default_profile.as_str());
        ensure(resolved.profile.as_str() == profile, || {
            format!(
                "container {name:?} gets profile {} instead of {profile}",
                resolved.profile
            )
        })?;
        let enforcement = lookup(case, derive::ENFORCEMENT, Some(name))
            .unwrap_or(settings.default_enforcement.as_str());
        ensure(resolved.enforcement.as_str() == enforcement, || {
            format!(
                "container {name:?} gets enforcement {} instead of {enforcement}",
                resolved.enforcement
            )
        })?;
        let paths = [&resolved.writable_paths, &resolved.readable_paths];
        for path in paths.into_iter().flatten().flat_map(|(paths, _)| paths) {
            ensure(!path.is_within(&launcher_dir), || {
                format!("container {name:?} gets path {path} in the launcher directory")
            })?;
        }
    }
    let opted_out = lookup(case, derive::INJECT, None) == Some("false");
    ensure(parsed.opt_out().is_some() == opted_out, || {
        format!(
            "opt_out() is {:?}, but the inject annotation says {opted_out}",
            parsed.opt_out()
        )
    })
}

fn key_of(name: &str) -> String {
    format!("{}{name}", derive::ANNOTATION_PREFIX)
}

/// The value that wins for `key` (precedence in derive.rs), trimmed as the
/// parser trims single values.
fn lookup<'a>(case: &'a AnnotationCase, key: &str, container: Option<&str>) -> Option<&'a str> {
    container
        .and_then(|c| case.pod.get(&format!("{key}.{c}")))
        .or_else(|| case.pod.get(key))
        .or_else(|| case.namespace_annotations.get(key))
        .map(|v| v.trim())
}

// === wire formats ===

/// `LANDGATE_POLICY` as the launcher reads it: no panic; on `Ok`, what
/// `to_json` writes reads back as the same policy, and writes the same text.
pub fn policy(data: &[u8]) -> Checked {
    let Ok(raw) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(policy) = Policy::from_json(raw) else {
        return Ok(());
    };
    let written = policy.to_json();
    let reread = Policy::from_json(&written)
        .map_err(|e| format!("the launcher refuses the policy it wrote ({written}): {e}"))?;
    ensure(reread == policy, || {
        format!("{written} reads back as {reread:?}, not {policy:?}")
    })?;
    ensure(reread.to_json() == written, || {
        format!("{written} is written back differently")
    })
}

/// The `landgate.dev/status` annotation: no panic; on `Ok`, the serialized
/// status parses back to the same value.
pub fn status(data: &[u8]) -> Checked {
    let Ok(raw) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(status) = mutate::parse_status(raw) else {
        return Ok(());
    };
    let written = serde_json::to_string(&status)
        .map_err(|e| format!("the status does not serialize: {e}"))?;
    let reread = mutate::parse_status(&written)
        .map_err(|e| format!("the engine refuses the status it would write ({written}): {e}"))?;
    ensure(reread == status, || {
        format!("{written} reads back as {reread:?}, not {status:?}")
    })
}
