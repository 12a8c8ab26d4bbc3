//! Attacks on the sandbox at admission, each refused (issue 8 review).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use landgate_policy::POLICY_ENV;

use super::Run;
use crate::derive;
use crate::mutate::*;
use crate::settings::Settings;
use serde_json::{Value, json};

fn pod(value: Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

fn mutate(v: &Value) -> Result<Run, MutateError> {
    let input = pod(v.clone());
    mutate_pod(
        &Settings::default(),
        PodContext {
            namespace: "shop",
            namespace_annotations: &BTreeMap::new(),
            images: crate::mutate::NO_IMAGES,
        },
        &input,
    )
    .map(|m| Run::of(&input, m))
}

fn refused(v: &Value) -> String {
    match mutate(v) {
        Ok(m) => panic!(
            "admitted ({:?}) but must be refused: {}",
            m.outcome,
            serde_json::to_string(&m.pod).unwrap()
        ),
        Err(err) => err.to_string(),
    }
}

fn wrapped(v: &Value) -> Value {
    let m = mutate(v).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.outcome, Outcome::Wrapped);
    serde_json::to_value(&m.pod).unwrap()
}

/// The first container's LANDGATE_POLICY as written into the pod.
fn policy_of(p: &Value) -> String {
    p["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == POLICY_ENV)
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn web_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"containers": [{
            "name": "web", "image": "nginx:1.27",
            "command": ["nginx"],
            "ports": [{"containerPort": 8080}],
            "volumeMounts": [{"name": "cache", "mountPath": "/var/cache/nginx"}]
        }],
        "volumes": [{"name": "cache", "emptyDir": {}}]}
    })
}

/// Escape 1: a mount of the `landgate` volume by name, in any container
/// kind, read-only or not, wherever it is mounted.
#[rstest::rstest]
#[case::init("initContainers", "/lg", false)]
#[case::init_read_only("initContainers", "/lg", true)]
#[case::app("containers", "/opt/lg", false)]
#[case::app_read_only_at_landgate_path("containers", "/landgate", true)]
fn the_launcher_volume_cannot_be_mounted_by_name(
    #[case] list: &str,
    #[case] path: &str,
    #[case] read_only: bool,
) {
    let mut v = web_pod();
    let mount = json!({"name": "landgate", "mountPath": path, "readOnly": read_only});
    if list == "initContainers" {
        v["spec"]["initContainers"] = json!([{
            "name": "prep", "image": "busybox", "command": ["sh", "-c", "true"],
            "volumeMounts": [mount]
        }]);
    } else {
        v["spec"]["containers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(mount);
    }
    let err = refused(&v);
    assert!(err.contains("mounts volume \"landgate\""), "{err}");
    assert!(err.contains("landgate reserves"), "{err}");
}

#[test]
fn the_launcher_volume_cannot_be_mounted_by_a_sidecar_or_ephemeral_container() {
    let mut v = web_pod();
    v["spec"]["initContainers"] = json!([{
        "name": "proxy", "image": "envoy", "command": ["envoy"], "restartPolicy": "Always",
        "volumeMounts": [{"name": "landgate", "mountPath": "/lg", "subPath": "bin"}]
    }]);
    assert!(refused(&v).contains("container \"proxy\""));

    let mut v = web_pod();
    v["spec"]["ephemeralContainers"] = json!([{
        "name": "debug", "image": "busybox",
        "volumeMounts": [{"name": "landgate", "mountPath": "/lg"}]
    }]);
    let err = refused(&v);
    assert!(err.contains("spec.ephemeralContainers[0]"), "{err}");
}

#[test]
fn on_reinvocation_only_landgates_own_mounts_of_its_volume_are_accepted() {
    let done = wrapped(&web_pod());
    // A container added by a later webhook that mounts the volume.
    let mut v = done.clone();
    v["spec"]["containers"].as_array_mut().unwrap().push(json!({
        "name": "late", "image": "busybox", "command": ["sleep", "1d"],
        "volumeMounts": [{"name": "landgate", "mountPath": "/landgate", "readOnly": true}]
    }));
    assert!(refused(&v).contains("container \"late\""));
    // A second, writable mount in a wrapped container.
    let mut v = done;
    v["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "landgate", "mountPath": "/lg"}));
    refused(&v);
}

/// Escape 2: spellings that reach /landgate at run time.
#[rstest::rstest]
#[case("/x/../landgate/landgate")]
#[case("/../landgate")]
#[case("landgate/bin")]
#[case("landgate")]
#[case("//landgate")]
#[case("/landgate/.")]
#[case("/./landgate/bin/")]
fn mount_paths_are_normalised_before_the_reserved_check(#[case] path: &str) {
    let mut v = web_pod();
    v["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!(path);
    let err = refused(&v);
    assert!(
        err.contains("landgate reserves") || err.contains("`..`"),
        "{path}: {err}"
    );
}

#[test]
fn sub_path_mounts_onto_landgate_are_refused() {
    let mut v = web_pod();
    v["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "evil", "configMap": {"name": "evil", "defaultMode": 493}}));
    v["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "evil", "mountPath": "landgate/landgate", "subPath": "landgate"}));
    assert!(refused(&v).contains("landgate reserves"));
    let mut v2 = v.clone();
    v2["spec"]["containers"][0]["volumeMounts"][1] =
        json!({"name": "evil", "mountPath": "/landgate/bin/sh", "subPathExpr": "$(POD)"});
    assert!(refused(&v2).contains("landgate reserves"));
}

/// A symlink planted in a volume the pod controls redirects a mount
/// nested inside it (runtimes mount by depth, resolving symlinks), on
/// top of /landgate.
#[test]
fn mounts_nested_inside_a_volume_the_pod_controls_are_refused() {
    let mut v = web_pod();
    v["spec"]["initContainers"] = json!([{
        "name": "prep", "image": "busybox", "command": ["sh", "-c", "ln -s /landgate /shared/lg"],
        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]
    }]);
    v["spec"]["volumes"] = json!([
        {"name": "cache", "emptyDir": {}},
        {"name": "shared", "emptyDir": {}},
        {"name": "payload", "configMap": {"name": "payload", "defaultMode": 493}}
    ]);
    v["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "shared", "mountPath": "/shared", "readOnly": true},
        {"name": "payload", "mountPath": "/shared/lg"}
    ]);
    let err = refused(&v);
    assert!(
        err.contains("mounts at /shared/lg, inside volume \"shared\" mounted at /shared"),
        "{err}"
    );
    // Inside a configMap (the kubelet writes it; no symlink can be
    // planted) is fine, and so is beside a volume.
    v["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "payload", "mountPath": "/etc/app"},
        {"name": "cache", "mountPath": "/etc/app/cache"},
        {"name": "shared", "mountPath": "/shared"}
    ]);
    assert_eq!(mutate(&v).unwrap().outcome, Outcome::Wrapped);
    // A volume at / would hold landgate's own mount point.
    v["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "shared", "mountPath": "/"}]);
    let err = refused(&v);
    assert!(err.contains("the launcher mount"), "{err}");
}

#[rstest::rstest]
#[case::termination_log(json!({"terminationMessagePath": "/landgate/landgate"}), "termination log")]
#[case::device(json!({"volumeDevices": [{"name": "cache", "devicePath": "landgate/bin/sh"}]}), "places device")]
fn other_kubelet_placed_files_under_landgate_are_refused(
    #[case] fields: Value,
    #[case] what: &str,
) {
    let mut v = web_pod();
    for (k, value) in fields.as_object().unwrap() {
        v["spec"]["containers"][0][k] = value.clone();
    }
    let err = refused(&v);
    assert!(
        err.contains(what) && err.contains("landgate reserves"),
        "{err}"
    );
}

/// Found by fuzzing: an app container named landgate-init, on the first
/// pass or added before a reinvocation, would give the pod two.
#[test]
fn the_init_container_name_is_reserved_in_every_list() {
    let mut v = web_pod();
    v["spec"]["containers"][0]["name"] = json!("landgate-init");
    let err = refused(&v);
    assert!(
        err.contains("spec.containers[0] is named \"landgate-init\""),
        "{err}"
    );
    let mut done = wrapped(&web_pod());
    done["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "landgate-init", "image": "busybox", "command": ["true"]}));
    assert!(refused(&done).contains("spec.containers[1] is named \"landgate-init\""));
}

#[test]
fn mount_paths_with_dot_dot_are_refused_in_a_wrapped_pod() {
    let mut v = web_pod();
    v["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!("/var/../srv/cache");
    let err = refused(&v);
    assert!(
        err.contains("spec.containers[0].volumeMounts[0].mountPath"),
        "{err}"
    );
    assert!(err.contains("`..`"), "{err}");
}

#[test]
fn relative_mount_paths_are_made_absolute_as_the_kubelet_does() {
    let mut v = web_pod();
    v["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!("srv/cache/");
    let m = mutate(&v).unwrap();
    let rw = &m.policies["web"].fs.as_ref().unwrap().rw;
    assert!(
        rw.iter().any(|p| p.to_string() == "/srv/cache"),
        "{rw:?} lacks /srv/cache"
    );
    assert!(
        m.warnings.iter().all(|w| !w.contains("ignored")),
        "{:?}",
        m.warnings
    );
}

/// Runs a pod whose landgate-init was changed: it comes back rebuilt
/// exactly as landgate builds it (plus `tokens` mounts).
fn rebuilt(v: &Value, tokens: &[Value]) -> Value {
    let m = mutate(v).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.outcome, Outcome::Wrapped);
    assert!(
        m.warnings.iter().any(|w| w.contains("was rebuilt")),
        "{:?}",
        m.warnings
    );
    let out = serde_json::to_value(&m.pod).unwrap();
    let spec: PodSpec = serde_json::from_value(out["spec"].clone()).unwrap();
    let mut want = serde_json::to_value(init_container(&Settings::default(), &spec)).unwrap();
    want["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .extend(tokens.iter().cloned());
    assert_eq!(out["spec"]["initContainers"][0], want);
    // And the rebuilt pod verifies.
    assert_eq!(mutate(&out).unwrap().outcome, Outcome::AlreadyWrapped);
    out
}

/// Escape 3: a forged or extended status accepted as "already wrapped".
#[test]
fn a_tenant_mount_on_landgate_init_is_removed_by_rebuilding_it() {
    let mut v = wrapped(&web_pod());
    v["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "evil", "configMap": {"name": "evil", "defaultMode": 493}}));
    v["spec"]["initContainers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "evil", "mountPath": "/usr/local/bin", "readOnly": true}));
    rebuilt(&v, &[]);
}

#[test]
fn only_a_token_volume_may_be_mounted_at_the_token_directory_of_landgate_init() {
    let done = wrapped(&web_pod());
    let token_mount = json!({
        "name": "kube-api-access-x7k2p", "readOnly": true,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"
    });
    let projected = json!({"name": "kube-api-access-x7k2p", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    ]}});
    let mut ok = done.clone();
    ok["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(projected);
    ok["spec"]["initContainers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(token_mount.clone());
    assert_eq!(mutate(&ok).unwrap().outcome, Outcome::AlreadyWrapped);

    // The same mount path, but from a ConfigMap the tenant controls.
    let mut v = done;
    v["spec"]["volumes"].as_array_mut().unwrap().push(
        json!({"name": "kube-api-access-x7k2p", "configMap": {"name": "evil", "defaultMode": 493}}),
    );
    v["spec"]["initContainers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(token_mount);
    rebuilt(&v, &[]);
}

#[rstest::rstest]
#[case::env("env", json!([{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]))]
#[case::security_context("securityContext", json!({"runAsUser": 0, "allowPrivilegeEscalation": true}))]
#[case::working_dir("workingDir", json!("/tmp"))]
#[case::args("args", json!(["--wrappers", "sh"]))]
#[case::stdin("stdin", json!(true))]
#[case::volume_devices("volumeDevices", json!([{"name": "cache", "devicePath": "/dev/x"}]))]
fn landgate_init_is_rebuilt_unless_it_equals_what_landgate_builds(
    #[case] field: &str,
    #[case] value: Value,
) {
    let mut v = wrapped(&web_pod());
    v["spec"]["initContainers"][0][field] = value;
    rebuilt(&v, &[]);
}

/// A wrapped pod whose container has `path` as its PATH, with a status
/// forged to match it (the hash is not a secret).
fn forged(path_before: &str, path: &str, edit: PathEdit) -> Value {
    let mut v = web_pod();
    v["spec"]["containers"][0]["env"] = json!([{"name": "PATH", "value": path_before}]);
    let mut done = wrapped(&v);
    let c = &mut done["spec"]["containers"][0];
    let command: Vec<String> = serde_json::from_value(c["command"].clone()).unwrap();
    let env = c["env"].as_array_mut().unwrap();
    env[0]["value"] = json!(path);
    let policy = env.iter().find(|e| e["name"] == POLICY_ENV).unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let recorded = (edit != PathEdit::Untouched).then_some(path);
    let hash = container_hash("web", &command, &policy, recorded, edit);
    let status = Status {
        version: STATUS_VERSION,
        containers: BTreeMap::from([("web".to_owned(), WrappedContainer { hash, path: edit })]),
        skipped: None,
    };
    done["metadata"]["annotations"][derive::STATUS] = json!(status.to_annotation());
    done
}

#[test]
fn a_forged_untouched_path_is_tampering() {
    // A status that claims PATH comes from valueFrom while the container
    // has a plain PATH without /landgate/bin: `kubectl exec … sh` would
    // not be caught.
    let done = forged("/usr/bin:/bin", "/usr/bin:/bin", PathEdit::Untouched);
    let err = refused(&done);
    assert!(err.contains("PATH"), "{err}");

    // And a PATH that only starts with the same letters.
    let done = forged("/usr/bin", "/landgate/binx:/usr/bin", PathEdit::Prefixed);
    assert!(refused(&done).contains("PATH"));
}

#[test]
fn a_prefilled_status_on_create_is_accepted_only_when_it_verifies_exactly() {
    // What landgate itself produced verifies: an empty patch.
    let done = wrapped(&web_pod());
    assert_eq!(mutate(&done).unwrap().outcome, Outcome::AlreadyWrapped);
    // A forged policy with a recomputed hash is re-derived, not trusted.
    let mut v = done;
    let c = &mut v["spec"]["containers"][0];
    let command: Vec<String> = serde_json::from_value(c["command"].clone()).unwrap();
    let env = c["env"].as_array_mut().unwrap();
    let lax = r#"{"v":1,"net":{"bind":null}}"#;
    env.iter_mut().find(|e| e["name"] == POLICY_ENV).unwrap()["value"] = json!(lax);
    let path = env.iter().find(|e| e["name"] == "PATH").unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let hash = container_hash("web", &command, lax, Some(&path), PathEdit::Added);
    let forged = json!({"version": 1, "containers": {"web": {"hash": hash, "path": "added"}}});
    v["metadata"]["annotations"][derive::STATUS] = json!(forged.to_string());
    let m = mutate(&v).unwrap();
    assert_eq!(m.outcome, Outcome::Wrapped);
    let fixed = serde_json::to_value(&m.pod).unwrap();
    let policy = policy_of(&fixed);
    assert_ne!(policy, lax);
    assert!(policy.contains("\"bind\":[8080]"), "{policy}");
}

/// `$(VAR)` in a value landgate writes would be expanded by the kubelet.
#[test]
fn dollar_signs_in_the_policy_are_escaped_for_the_kubelet() {
    let mut v = web_pod();
    v["metadata"]["annotations"] = json!({"landgate.dev/writable-paths": "/data/$(HOME)"});
    let m = mutate(&v).unwrap();
    let p = serde_json::to_value(&m.pod).unwrap();
    let policy = policy_of(&p);
    assert!(policy.contains("/data/$$(HOME)"), "{policy}");
    assert_eq!(expand_like_kubelet(&policy), m.policies["web"].to_json());
    // And reinvocation verifies it.
    assert_eq!(mutate(&p).unwrap().outcome, Outcome::AlreadyWrapped);
}

/// The kubelet's `$(VAR)` expansion with no variables defined:
/// `$$` becomes `$`, `$(X)` stays as written.
fn expand_like_kubelet(s: &str) -> String {
    s.replace("$$", "$")
}

#[test]
fn writable_directories_on_path_are_reported_and_refused_under_required() {
    let mut v = web_pod();
    v["spec"]["containers"][0]["env"] =
        json!([{"name": "PATH", "value": "/var/cache/nginx/bin:/usr/bin"}]);
    let m = mutate(&v).unwrap();
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("PATH directory /var/cache/nginx/bin is writable")),
        "{:?}",
        m.warnings
    );
    v["metadata"]["annotations"] = json!({"landgate.dev/enforcement": "required"});
    let err = refused(&v);
    assert!(err.contains("/var/cache/nginx/bin"), "{err}");
}

/// A PATH directory on a volume this container mounts read-only is
/// writable when any container mounts that volume writable, whatever else
/// that container mounts (review finding: the writers were first kept in a
/// list searched by bisection, and every earlier test had one writable
/// volume, so a list left unsorted went unnoticed: `tools` then `a` missed
/// `tools`).
#[rstest::rstest]
#[case::alone(&["tools"])]
#[case::first_of_two(&["tools", "a"])]
#[case::last_of_three(&["b", "a", "tools"])]
fn a_sidecar_writing_several_volumes_makes_each_writable(#[case] written: &[&str]) {
    let mounts: Vec<Value> = written
        .iter()
        .map(|name| json!({"name": name, "mountPath": format!("/w/{name}")}))
        .collect();
    let volumes: Vec<Value> = ["a", "b", "tools"]
        .iter()
        .map(|name| json!({"name": name, "emptyDir": {}}))
        .collect();
    let v = json!({
        "metadata": {"name": "web", "annotations": {derive::ENFORCEMENT: "required"}},
        "spec": {
            "volumes": volumes,
            "containers": [
                {
                    "name": "app", "image": "busybox:1.36", "command": ["httpd", "-f"],
                    "env": [{"name": "PATH", "value": "/tools:/usr/bin:/bin"}],
                    "volumeMounts": [{"name": "tools", "mountPath": "/tools", "readOnly": true}]
                },
                {
                    "name": "sidecar", "image": "busybox:1.36", "command": ["sleep", "1d"],
                    "volumeMounts": mounts
                }
            ]
        }
    });
    let err = refused(&v);
    assert!(err.contains("PATH has /tools"), "{err}");
}
