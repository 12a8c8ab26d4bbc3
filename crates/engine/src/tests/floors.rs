//! Namespace annotations as floors (issue 11): a pod may tighten what its
//! namespace sets and never loosen it; the namespace decides whether its
//! pods may name paths or opt out. Each rule both ways: the tightening is
//! admitted and shows in the policy, the loosening is refused naming both
//! annotations and the value that wins.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use landgate_policy::{AbsPath, Enforcement, Policy, PortSet};
use rstest::rstest;
use serde_json::json;

use super::Run;
use crate::derive::{
    ALLOW_OPT_OUT, ALLOW_POD_PATHS, CONNECT_PORTS, ENFORCEMENT, INJECT, IO_URING, PROFILE,
    READABLE_PATHS, WRITABLE_PATHS,
};
use crate::mutate::*;
use crate::settings::Settings;

/// Two containers, so that a per-container key shows it is per container.
fn shop_pod(annotations: &[(&str, &str)]) -> Pod {
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {"containers": [
            {"name": "web", "image": "nginx:1.27", "command": ["nginx"],
             "ports": [{"containerPort": 8080}]},
            {"name": "side", "image": "envoy:1.31", "command": ["envoy"]}
        ]}
    }))
    .unwrap()
}

fn ns(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mutate_with(
    settings: &Settings,
    namespace: &[(&str, &str)],
    pod: &[(&str, &str)],
) -> Result<Run, MutateError> {
    let input = shop_pod(pod);
    mutate_pod(
        settings,
        PodContext {
            namespace: "shop",
            namespace_annotations: &ns(namespace),
            images: crate::mutate::NO_IMAGES,
        },
        &input,
    )
    .map(|m| Run::of(&input, m))
}

fn admitted(namespace: &[(&str, &str)], pod: &[(&str, &str)]) -> Run {
    mutate_with(&Settings::default(), namespace, pod).unwrap_or_else(|e| panic!("{e}"))
}

fn wrapped(namespace: &[(&str, &str)], pod: &[(&str, &str)]) -> BTreeMap<String, Policy> {
    let run = admitted(namespace, pod);
    assert_eq!(run.outcome, Outcome::Wrapped);
    run.policies
}

fn refused(namespace: &[(&str, &str)], pod: &[(&str, &str)]) -> String {
    match mutate_with(&Settings::default(), namespace, pod) {
        Ok(run) => panic!("admitted ({:?}) but must be refused", run.outcome),
        Err(err) => err.to_string(),
    }
}

fn abs(path: &str) -> AbsPath {
    path.parse().unwrap()
}

// === enforcement ===

#[rstest]
#[case::namespace_alone(&[], Enforcement::Required, Enforcement::Required)]
#[case::pod_agrees(&[(ENFORCEMENT, "required")], Enforcement::Required, Enforcement::Required)]
fn enforcement_required_by_the_namespace_holds(
    #[case] pod: &[(&str, &str)],
    #[case] web: Enforcement,
    #[case] side: Enforcement,
) {
    let policies = wrapped(&[(ENFORCEMENT, "required")], pod);
    assert_eq!(policies["web"].enforcement, web);
    assert_eq!(policies["side"].enforcement, side);
}

#[test]
fn enforcement_may_be_raised() {
    let policies = wrapped(
        &[(ENFORCEMENT, "best-effort")],
        &[("landgate.dev/enforcement.web", "required")],
    );
    assert_eq!(policies["web"].enforcement, Enforcement::Required);
    assert_eq!(policies["side"].enforcement, Enforcement::BestEffort);
}

#[rstest]
#[case::pod_wide(ENFORCEMENT)]
#[case::per_container("landgate.dev/enforcement.side")]
fn enforcement_may_not_be_lowered(#[case] key: &str) {
    assert_eq!(
        refused(&[(ENFORCEMENT, "required")], &[(key, "best-effort")]),
        format!(
            "pod shop/web: pod annotation {key} = \"best-effort\" lowers annotation landgate.dev/enforcement on namespace shop = \"required\"; a namespace's enforcement is a floor that a pod may raise but not lower (best-effort < required), so \"required\" wins. Remove the pod annotation or set it to \"required\""
        )
    );
}

/// Every pod annotation is checked, even one that no container ends up
/// using.
#[test]
fn an_outranked_lowering_is_refused_too() {
    let err = refused(
        &[(ENFORCEMENT, "required")],
        &[
            (ENFORCEMENT, "best-effort"),
            ("landgate.dev/enforcement.web", "required"),
            ("landgate.dev/enforcement.side", "required"),
        ],
    );
    assert!(
        err.contains("pod annotation landgate.dev/enforcement = \"best-effort\" lowers"),
        "{err}"
    );
}

// === profile ===

#[rstest]
#[case::same(Some("baseline"), "baseline")]
#[case::tighter(Some("strict"), "strict")]
#[case::inherited(None, "baseline")]
fn profile_may_be_tightened(#[case] pod: Option<&str>, #[case] web: &str) {
    let pod: Vec<(&str, &str)> = pod
        .map(|p| ("landgate.dev/profile.web", p))
        .into_iter()
        .collect();
    let policies = wrapped(&[(PROFILE, "baseline")], &pod);
    // baseline reads everything; strict only system dirs and declared paths.
    let reads_all = |name: &str| policies[name].fs.as_ref().unwrap().rx.contains(&abs("/"));
    assert_eq!(reads_all("web"), web == "baseline");
    assert!(reads_all("side"));
}

#[test]
fn profile_from_ports_only_may_be_tightened() {
    let policies = wrapped(&[(PROFILE, "ports-only")], &[(PROFILE, "baseline")]);
    assert!(policies["web"].fs.is_some());
}

#[rstest]
#[case::ports_only_under_baseline("baseline", PROFILE, "ports-only", "baseline or strict")]
#[case::baseline_under_strict("strict", "landgate.dev/profile.web", "baseline", "strict")]
#[case::ports_only_under_strict("strict", "landgate.dev/profile.side", "ports-only", "strict")]
fn profile_may_not_be_loosened(
    #[case] namespace: &str,
    #[case] key: &str,
    #[case] pod: &str,
    #[case] choices: &str,
) {
    assert_eq!(
        refused(&[(PROFILE, namespace)], &[(key, pod)]),
        format!(
            "pod shop/web: pod annotation {key} = {pod:?} is less confining than annotation landgate.dev/profile on namespace shop = {namespace:?}; a namespace's profile is a floor that a pod may tighten but not loosen (ports-only < baseline < strict), so {namespace:?} wins. Remove the pod annotation or choose {choices}"
        )
    );
}

// === connect-ports ===

#[rstest]
#[case::subset(&[(CONNECT_PORTS, "443")], Some(PortSet::from([443])))]
#[case::none_at_all(&[("landgate.dev/connect-ports.web", "")], Some(PortSet::from([])))]
#[case::same(&[(CONNECT_PORTS, "443, 53")], Some(PortSet::from([53, 443])))]
#[case::inherited(&[], Some(PortSet::from([53, 443])))]
fn connect_ports_may_be_narrowed(#[case] pod: &[(&str, &str)], #[case] web: Option<PortSet>) {
    let policies = wrapped(&[(CONNECT_PORTS, "53,443")], pod);
    assert_eq!(policies["web"].net.connect, web);
}

#[test]
fn connect_ports_without_a_namespace_value_have_no_floor() {
    let policies = wrapped(&[], &[(CONNECT_PORTS, "8443")]);
    assert_eq!(policies["web"].net.connect, Some(PortSet::from([8443])));
}

#[rstest]
#[case::wider("53,443", CONNECT_PORTS, "443,8080", "443,8080", "8080", "53,443")]
#[case::per_container(
    "53,443",
    "landgate.dev/connect-ports.side",
    "5432",
    "5432",
    "5432",
    "53,443"
)]
#[case::namespace_allows_none("", CONNECT_PORTS, "53", "53", "53", "")]
fn connect_ports_may_not_be_widened(
    #[case] namespace: &str,
    #[case] key: &str,
    #[case] pod: &str,
    #[case] shown: &str,
    #[case] port: &str,
    #[case] wins: &str,
) {
    assert_eq!(
        refused(&[(CONNECT_PORTS, namespace)], &[(key, pod)]),
        format!(
            "pod shop/web: pod annotation {key} = {shown:?} allows port {port}, which is not in annotation landgate.dev/connect-ports on namespace shop = {wins:?}; a namespace's connect ports are a ceiling that a pod may narrow but not widen (a pod lists a subset of them; \"\" allows none), so {wins:?} wins. Remove the pod annotation or list only ports the namespace allows"
        )
    );
}

// === io-uring ===

#[test]
fn io_uring_denied_by_the_namespace_stays_denied() {
    let policies = wrapped(
        &[(IO_URING, "allow")],
        &[("landgate.dev/io-uring.web", "deny")],
    );
    assert!(!policies["web"].allow_io_uring);
    assert_eq!(
        refused(
            &[(IO_URING, "deny")],
            &[("landgate.dev/io-uring.web", "allow")]
        ),
        "pod shop/web: pod annotation landgate.dev/io-uring.web = \"allow\" loosens annotation landgate.dev/io-uring on namespace shop = \"deny\"; a namespace's io-uring is a floor that a pod may tighten but not loosen (allow < deny), so \"deny\" wins. Remove the pod annotation or set it to \"deny\""
    );
}

// === allow-pod-paths ===

#[rstest]
#[case::absent(&[])]
#[case::allowed(&[(ALLOW_POD_PATHS, "true")])]
fn pod_paths_are_allowed_by_default(#[case] namespace: &[(&str, &str)]) {
    let policies = wrapped(
        namespace,
        &[
            ("landgate.dev/writable-paths.web", "/data"),
            (PROFILE, "strict"),
            (READABLE_PATHS, "/srv"),
        ],
    );
    let fs = policies["web"].fs.as_ref().unwrap();
    assert!(fs.rw.contains(&abs("/data")), "{fs:?}");
    assert!(fs.rx.contains(&abs("/srv")), "{fs:?}");
}

#[rstest]
#[case::writable(
    WRITABLE_PATHS,
    "/data",
    "no landgate.dev/writable-paths (the namespace sets none)"
)]
#[case::readable_per_container(
    "landgate.dev/readable-paths.side",
    "/srv",
    "no landgate.dev/readable-paths (the namespace sets none)"
)]
fn pod_paths_may_be_forbidden(#[case] key: &str, #[case] value: &str, #[case] wins: &str) {
    let key_of = |k: &str| k.split('.').take(2).collect::<Vec<_>>().join(".");
    assert_eq!(
        refused(&[(ALLOW_POD_PATHS, "false")], &[(key, value)]),
        format!(
            "pod shop/web: pod annotation {key} = {value:?} is refused: annotation landgate.dev/allow-pod-paths on namespace shop = \"false\" keeps paths out of pod annotations, so {wins} applies. Remove the pod annotation; the namespace's owner can set {} on the namespace instead",
            key_of(key)
        )
    );
}

#[test]
fn forbidden_pod_paths_leave_the_namespace_s_own() {
    let namespace = [(ALLOW_POD_PATHS, "false"), (WRITABLE_PATHS, "/data")];
    let policies = wrapped(&namespace, &[]);
    assert!(
        policies["web"]
            .fs
            .as_ref()
            .unwrap()
            .rw
            .contains(&abs("/data")),
        "{:?}",
        policies["web"]
    );
    let err = refused(&namespace, &[(WRITABLE_PATHS, "/data,/var/lib")]);
    assert!(
        err.contains(
            "so the namespace's annotation landgate.dev/writable-paths on namespace shop = \"/data\" applies"
        ),
        "{err}"
    );
}

// === allow-opt-out ===

#[rstest]
#[case::absent(&[], "annotation landgate.dev/allow-opt-out is absent from namespace shop")]
#[case::forbidden(&[(ALLOW_OPT_OUT, "false")], "annotation landgate.dev/allow-opt-out on namespace shop = \"false\"")]
fn opt_out_is_refused_unless_the_namespace_allows_it(
    #[case] namespace: &[(&str, &str)],
    #[case] forbids: &str,
) {
    assert_eq!(
        refused(namespace, &[(INJECT, "false")]),
        format!(
            "pod shop/web: pod annotation landgate.dev/inject = \"false\" opts the pod out of landgate, but namespace shop does not allow opt-outs ({forbids}; only \"true\" allows them), so the pod is refused rather than admitted unwrapped. Remove it from the pod to have the pod sandboxed, or have the namespace's owner annotate namespace shop with landgate.dev/allow-opt-out: \"true\""
        )
    );
}

#[test]
fn opt_out_allowed_by_the_namespace_is_admitted_unwrapped() {
    let run = admitted(&[(ALLOW_OPT_OUT, "true")], &[(INJECT, "false")]);
    assert_eq!(
        run.outcome,
        Outcome::Skipped(
            "it opts out of landgate (pod annotation landgate.dev/inject = \"false\")".into()
        )
    );
    assert!(run.policies.is_empty());
    assert!(run.pod.spec.unwrap().init_containers.is_none());
    // Leave to opt out is not an opt-out.
    let policies = wrapped(&[(ALLOW_OPT_OUT, "true")], &[]);
    assert_eq!(policies.len(), 2);
    // Under `required` an opt-out stays refused, as before: a pod is never
    // left unwrapped when a container requires enforcement.
    let err = refused(
        &[(ALLOW_OPT_OUT, "true"), (ENFORCEMENT, "required")],
        &[(INJECT, "false")],
    );
    assert!(
        err.starts_with("pod shop/web: it opts out of landgate (pod annotation landgate.dev/inject = \"false\"), but container \"web\" requires enforcement (annotation landgate.dev/enforcement on namespace shop = required)"),
        "{err}"
    );
}

/// A namespace that opts itself out keeps doing so; its pods' own
/// `"false"` changes nothing there, and `"true"` still wraps them.
#[test]
fn a_namespace_opting_out_needs_no_leave() {
    let skipped = |pod: &[(&str, &str)]| {
        let run = admitted(&[(INJECT, "false")], pod);
        assert!(
            matches!(run.outcome, Outcome::Skipped(_)),
            "{:?}",
            run.outcome
        );
    };
    skipped(&[]);
    skipped(&[(INJECT, "false")]);
    wrapped(&[(INJECT, "false")], &[(INJECT, "true")]);
}

// === namespace-only keys and their values ===

#[rstest]
#[case(ALLOW_OPT_OUT, "true")]
#[case(ALLOW_POD_PATHS, "true")]
#[case("landgate.dev/allow-pod-paths.web", "true")]
fn namespace_only_keys_are_refused_on_pods(#[case] key: &str, #[case] value: &str) {
    let name = key.split('.').take(2).collect::<Vec<_>>().join(".");
    assert_eq!(
        refused(&[(ALLOW_OPT_OUT, "true")], &[(key, value)]),
        format!(
            "pod shop/web: pod annotation {key} = {value:?} is refused: {name} is namespace-only, it says what the pods of a namespace may do, and a pod cannot grant it to itself; remove it from the pod (the namespace's owner sets it on the namespace)"
        )
    );
}

#[rstest]
#[case(ALLOW_OPT_OUT, "yes")]
#[case(ALLOW_POD_PATHS, "")]
#[case(ALLOW_POD_PATHS, "False")]
fn bad_values_of_namespace_only_keys_are_refused(#[case] key: &str, #[case] value: &str) {
    assert_eq!(
        refused(&[(key, value)], &[]),
        format!(
            "pod shop/web: annotation {key} on namespace shop has invalid value {value:?}: expected \"true\" or \"false\"; fix or remove the annotation on namespace shop"
        )
    );
}

// === flags ===

/// The webhook's flags are defaults only: a pod may go below them.
#[test]
fn flags_are_not_floors() {
    let settings = Settings {
        default_profile: crate::settings::Profile::Strict,
        default_enforcement: Enforcement::Required,
        ..Settings::default()
    };
    let run = mutate_with(
        &settings,
        &[],
        &[(PROFILE, "ports-only"), (ENFORCEMENT, "best-effort")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.policies["web"].fs, None);
    assert_eq!(run.policies["web"].enforcement, Enforcement::BestEffort);
}
