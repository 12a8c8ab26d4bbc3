//! The validating webhook's judgement (issue 11): a pod as it will be
//! stored, after every mutating webhook, is admitted only if landgate's
//! mutating pass would leave it alone, or would only record why it runs
//! unwrapped. Each case starts from what the real engine stored, then
//! changes it as a later mutating webhook, or a skipped mutating call,
//! would.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::derive::{ALLOW_OPT_OUT, INJECT, STATUS};
use crate::mutate::*;
use crate::settings::Settings;
use crate::validate::{CHANGED, NOT_WRAPPED, validate_pod};

fn pod(value: Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

fn shop() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "containers": [
                {"name": "web", "image": "nginx:1.27", "command": ["nginx"],
                 "ports": [{"containerPort": 8080}]},
                {"name": "side", "image": "envoy:1.31", "command": ["envoy"]}
            ]
        }
    })
}

fn context<'a>(annotations: &'a BTreeMap<String, String>) -> PodContext<'a> {
    PodContext {
        namespace: "shop",
        namespace_annotations: annotations,
        images: NO_IMAGES,
    }
}

/// `input` as landgate's mutating webhook stores it.
fn stored(input: Value, namespace: &BTreeMap<String, String>) -> Value {
    let input = pod(input);
    let mutation = mutate_pod(&Settings::default(), context(namespace), &input).unwrap();
    serde_json::to_value(crate::patch::apply(&input, &mutation.patch).unwrap()).unwrap()
}

fn validate(pod_value: &Value, namespace: &BTreeMap<String, String>) -> Outcome {
    validate_pod(
        &Settings::default(),
        context(namespace),
        &pod(pod_value.clone()),
    )
}

fn refusal(outcome: Outcome, reason: &str, parts: &[&str]) {
    let Outcome::Refused {
        reason: found,
        message,
    } = outcome
    else {
        panic!("expected a refusal ({reason}), got {outcome:?}");
    };
    assert_eq!(found, reason, "{message}");
    for part in parts {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

fn no_namespace_annotations() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn a_pod_stored_wrapped_is_admitted() {
    let namespace = no_namespace_annotations();
    let stored = stored(shop(), &namespace);
    assert_eq!(validate(&stored, &namespace), Outcome::AlreadyWrapped);
}

/// The mutating call failed under failurePolicy: Ignore (or was never
/// made): the pod arrives as the user wrote it.
#[test]
fn a_pod_the_mutating_webhook_never_saw_is_refused() {
    let namespace = no_namespace_annotations();
    refusal(
        validate(&shop(), &namespace),
        NOT_WRAPPED,
        &[
            "pod shop/web is not wrapped",
            "carries no landgate.dev/status",
            "failurePolicy: Ignore",
            "container \"web\" (spec.containers[0])",
        ],
    );
}

/// A status is user-writable: one that claims the pod was skipped does not
/// make it so.
#[test]
fn a_forged_skipped_status_is_refused() {
    let namespace = no_namespace_annotations();
    let mut forged = shop();
    forged["metadata"]["annotations"] = json!({STATUS: "{\"version\":1,\"skipped\":\"trust me\"}"});
    refusal(
        validate(&forged, &namespace),
        NOT_WRAPPED,
        &["says it was admitted unwrapped (trust me)"],
    );
}

#[test]
fn an_opt_out_the_namespace_allows_is_admitted_with_or_without_a_status() {
    let namespace: BTreeMap<String, String> =
        [(ALLOW_OPT_OUT.to_owned(), "true".to_owned())].into();
    let mut opted_out = shop();
    opted_out["metadata"]["annotations"] = json!({INJECT: "false"});
    // The mutating call was skipped: no status at all.
    assert!(matches!(
        validate(&opted_out, &namespace),
        Outcome::Skipped(_)
    ));
    // The mutating webhook recorded the skip.
    let stored = stored(opted_out, &namespace);
    assert!(stored["metadata"]["annotations"][STATUS].is_string());
    assert!(matches!(validate(&stored, &namespace), Outcome::Skipped(_)));
}

/// The label opt-out skips the mutating webhook entirely (objectSelector);
/// the validating webhook has no objectSelector, so the namespace's rule
/// still holds.
#[test]
fn an_opt_out_the_namespace_does_not_allow_is_refused() {
    let namespace = no_namespace_annotations();
    let mut opted_out = shop();
    opted_out["metadata"]["labels"] = json!({INJECT: "false"});
    refusal(
        validate(&opted_out, &namespace),
        "opt-out-forbidden",
        &["pod label landgate.dev/inject = \"false\"", ALLOW_OPT_OUT],
    );
}

#[test]
fn an_opt_out_label_the_namespace_allows_is_admitted() {
    let namespace: BTreeMap<String, String> =
        [(ALLOW_OPT_OUT.to_owned(), "true".to_owned())].into();
    let mut opted_out = shop();
    opted_out["metadata"]["labels"] = json!({INJECT: "false"});
    let outcome = validate(&opted_out, &namespace);
    assert!(
        matches!(&outcome, Outcome::Skipped(why) if why.contains("pod label landgate.dev/inject")),
        "{outcome:?}"
    );
    // Any other value of the label is not an opt-out.
    opted_out["metadata"]["labels"] = json!({INJECT: "no"});
    refusal(validate(&opted_out, &namespace), NOT_WRAPPED, &[]);
}

#[test]
fn a_command_changed_after_wrapping_is_refused_naming_the_container() {
    let namespace = no_namespace_annotations();
    let mut changed = stored(shop(), &namespace);
    changed["spec"]["containers"][1]["command"] = json!(["envoy", "--unsandboxed"]);
    refusal(
        validate(&changed, &namespace),
        "tampered",
        &["container \"side\" (spec.containers[1])", "command"],
    );
}

#[test]
fn a_container_added_after_wrapping_is_refused_as_unwrapped() {
    let namespace = no_namespace_annotations();
    let mut changed = stored(shop(), &namespace);
    changed["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "mesh", "image": "proxy:1", "command": ["proxy"]}));
    refusal(
        validate(&changed, &namespace),
        CHANGED,
        &[
            "was changed after landgate wrapped it",
            "container \"mesh\" (spec.containers[2]) is not wrapped",
            "order it before landgate",
        ],
    );
}

/// A writable mount added to a wrapped container changes the policy it
/// should have: LANDGATE_POLICY is no longer what landgate derives.
#[test]
fn a_mount_added_after_wrapping_is_refused_naming_the_policy() {
    let namespace = no_namespace_annotations();
    let mut changed = stored(shop(), &namespace);
    changed["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "cache", "mountPath": "/srv/cache"}));
    refusal(
        validate(&changed, &namespace),
        CHANGED,
        &["container \"web\" (spec.containers[0]): env LANDGATE_POLICY"],
    );
}

#[test]
fn landgate_init_changed_after_wrapping_is_refused() {
    let namespace = no_namespace_annotations();
    let mut changed = stored(shop(), &namespace);
    changed["spec"]["initContainers"][0]["image"] = json!("attacker/launcher:1");
    refusal(
        validate(&changed, &namespace),
        CHANGED,
        &["spec.initContainers[0]"],
    );
}

#[test]
fn a_wrapped_pod_that_would_now_be_skipped_is_refused() {
    let namespace = no_namespace_annotations();
    let mut changed = stored(shop(), &namespace);
    // A later webhook adds a container whose entrypoint is unknown: landgate
    // would unwrap the whole pod rather than half-wrap it.
    changed["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "mesh", "image": "proxy:1"}));
    refusal(
        validate(&changed, &namespace),
        CHANGED,
        &["landgate would now admit it only unwrapped", "\"mesh\""],
    );
}

/// A pod landgate admits unwrapped (unknown entrypoint, best-effort) as the
/// mutating webhook stored it.
#[test]
fn a_pod_stored_skipped_is_admitted() {
    let namespace = no_namespace_annotations();
    let mut input = shop();
    input["spec"]["containers"][1]
        .as_object_mut()
        .unwrap()
        .remove("command");
    let stored = stored(input, &namespace);
    assert!(matches!(validate(&stored, &namespace), Outcome::Skipped(_)));
}

#[test]
fn excluded_namespaces_are_admitted() {
    let namespace = no_namespace_annotations();
    let settings = Settings {
        excluded_namespaces: vec!["shop".to_owned()],
        ..Settings::default()
    };
    let outcome = validate_pod(&settings, context(&namespace), &pod(shop()));
    assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
}

/// A pod the mutating webhook never saw (the opt-out label) carries no
/// record; one it carries anyway is not landgate's (security review).
#[rstest::rstest]
#[case::label(json!({"landgate.dev/inject": "false", "landgate.dev/profile": "strict"}), json!({}), "label landgate.dev/profile=\"strict\"")]
#[case::status(
    json!({"landgate.dev/inject": "false"}),
    json!({STATUS: "{\"version\":1,\"skipped\":\"anything\"}"}),
    "annotation landgate.dev/status="
)]
fn a_forged_record_on_an_opted_out_pod_is_refused(
    #[case] labels: Value,
    #[case] annotations: Value,
    #[case] named: &str,
) {
    let namespace: BTreeMap<String, String> =
        [(ALLOW_OPT_OUT.to_owned(), "true".to_owned())].into();
    let mut forged = shop();
    forged["metadata"]["labels"] = labels;
    forged["metadata"]["annotations"] = annotations;
    refusal(
        validate(&forged, &namespace),
        crate::validate::FORGED_RECORD,
        &[
            "is admitted unwrapped, but it carries",
            named,
            "only landgate writes its record",
        ],
    );
}

/// The label keeps the mutating webhook away whatever the annotation says:
/// the two disagreeing is refused, clearly (security review).
#[test]
fn an_opt_out_label_contradicted_by_the_annotation_is_refused() {
    let namespace: BTreeMap<String, String> =
        [(ALLOW_OPT_OUT.to_owned(), "true".to_owned())].into();
    let mut both = shop();
    both["metadata"]["labels"] = json!({INJECT: "false"});
    both["metadata"]["annotations"] = json!({INJECT: "true"});
    refusal(
        validate(&both, &namespace),
        "invalid-annotation",
        &[
            "pod label landgate.dev/inject",
            "pod annotation landgate.dev/inject says \"true\"",
            "contradict",
        ],
    );
    // Saying the same twice is one opt-out.
    both["metadata"]["annotations"] = json!({INJECT: "false"});
    assert!(matches!(validate(&both, &namespace), Outcome::Skipped(_)));
}

/// Places are named in the pod as the patch finds them: an init container
/// a later webhook put first moves landgate-init (security review: the
/// message used to name landgate-init for the newcomer's fields).
#[test]
fn an_init_container_added_first_is_named_itself() {
    let namespace = no_namespace_annotations();
    let mut input = shop();
    input["spec"]["initContainers"] =
        json!([{"name": "setup", "image": "busybox:1.36", "command": ["true"]}]);
    let mut changed = stored(input, &namespace);
    changed["spec"]["initContainers"]
        .as_array_mut()
        .unwrap()
        .insert(
            0,
            json!({"name": "istio-validation", "image": "proxy:1", "command": ["check"]}),
        );
    let outcome = validate(&changed, &namespace);
    let Outcome::Refused { message, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        message.contains(
            "init container \"istio-validation\" (spec.initContainers[1]) is not wrapped"
        ),
        "{message}"
    );
    assert!(
        !message.contains("\"landgate-init\" (spec.initContainers[1])"),
        "{message}"
    );
}

#[test]
fn a_profile_label_changed_after_wrapping_is_named() {
    let namespace = no_namespace_annotations();
    let mut changed = stored(shop(), &namespace);
    changed["metadata"]["labels"][crate::mutate::PROFILE_LABEL] = json!("strict");
    refusal(
        validate(&changed, &namespace),
        CHANGED,
        &["label landgate.dev/profile is not as landgate wrote it"],
    );
}
