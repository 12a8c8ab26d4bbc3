//! The engine end to end: a pod in, the patch applied, what came out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use landgate_policy::env::ACTIVE as ACTIVE_ENV;
use landgate_policy::{POLICY_ENV, Policy, PortSet};
use serde_json::{Value, json};

use super::Run;
use crate::derive::{self, ALLOW_OPT_OUT, CONNECT_PORTS, ENFORCEMENT, INJECT, PROFILE};
use crate::mutate::*;
use crate::read::Pass;
use crate::settings::{Settings, UnknownEntrypoint};

fn pod(value: Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

fn web_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"containers": [{
            "name": "web", "image": "nginx:1.27",
            "command": ["nginx"], "args": ["-g", "daemon off;"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "volumeMounts": [{"name": "cache", "mountPath": "/var/cache/nginx"}]
        }],
        "volumes": [{"name": "cache", "emptyDir": {}}]}
    })
}

fn run_with(settings: &Settings, ns: &BTreeMap<String, String>, p: &Pod) -> Run {
    let m = mutate_pod(
        settings,
        PodContext {
            namespace: "shop",
            namespace_annotations: ns,
            images: crate::mutate::NO_IMAGES,
        },
        p,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The patch applies to the pod.
    Run::of(p, m)
}

fn run(p: &Pod) -> Run {
    run_with(&Settings::default(), &BTreeMap::new(), p)
}

fn refuse_with(settings: &Settings, ns: &BTreeMap<String, String>, p: &Pod) -> String {
    mutate_pod(
        settings,
        PodContext {
            namespace: "shop",
            namespace_annotations: ns,
            images: crate::mutate::NO_IMAGES,
        },
        p,
    )
    .map(|m| m.outcome)
    .unwrap_err()
    .to_string()
}

fn refuse(p: &Pod) -> String {
    refuse_with(&Settings::default(), &BTreeMap::new(), p)
}

fn json_of(p: &Pod) -> Value {
    serde_json::to_value(p).unwrap()
}

/// Runs a pod whose landgate-init was changed: it comes back rebuilt as
/// landgate builds it, with a warning.
fn rebuilt_init(v: Value) -> Value {
    let m = run(&pod(v));
    assert_eq!(m.outcome, Outcome::Wrapped);
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("landgate-init differed")),
        "{:?}",
        m.warnings
    );
    let out = json_of(&m.pod);
    let spec: PodSpec = serde_json::from_value(out["spec"].clone()).unwrap();
    assert_eq!(
        out["spec"]["initContainers"][0],
        serde_json::to_value(init_container(&Settings::default(), &spec)).unwrap()
    );
    out
}

fn env<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["env"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

fn status(p: &Value) -> Status {
    serde_json::from_str(
        p["metadata"]["annotations"][derive::STATUS]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn wraps_a_pod() {
    let m = run(&pod(web_pod()));
    assert_eq!(m.outcome, Outcome::Wrapped);
    assert_eq!(
        m.warnings,
        [format!(
            "landgate: container \"web\": PATH set to /landgate/bin:{}, replacing the image's own PATH (unknown at admission); if the image needs other directories on PATH, set PATH under env",
            crate::settings::Settings::default().default_path
        )]
    );
    let p = json_of(&m.pod);
    let init = &p["spec"]["initContainers"][0];
    assert_eq!(init["name"], INIT_CONTAINER_NAME);
    assert_eq!(init["image"], crate::settings::DEFAULT_LAUNCHER_IMAGE);
    assert_eq!(
        init["command"],
        json!([
            IMAGE_LAUNCHER,
            "install",
            "/landgate",
            "--wrappers",
            "sh,bash,ash,dash,zsh,busybox,python,python3,perl,ruby,node,php,tar,curl,wget,nc"
        ])
    );
    assert_eq!(
        init["volumeMounts"],
        json!([{"name": "landgate", "mountPath": "/landgate"}])
    );
    assert_eq!(
        p["spec"]["volumes"][1],
        json!({"name": "landgate", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}})
    );
    let web = &p["spec"]["containers"][0];
    assert_eq!(
        web["command"],
        json!(["/landgate/landgate", "exec", "--", "nginx"])
    );
    assert_eq!(web["args"], json!(["-g", "daemon off;"]));
    assert_eq!(
        web["volumeMounts"][1],
        json!({"name": "landgate", "mountPath": "/landgate", "readOnly": true})
    );
    assert_eq!(
        env(web, "PATH"),
        Some("/landgate/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    );
    let policy = Policy::from_json(env(web, POLICY_ENV).unwrap()).unwrap();
    assert_eq!(policy, m.policies["web"]);
    assert_eq!(policy.net.bind, Some(PortSet::from([8080])));
    let st = status(&p);
    assert_eq!(st.version, 1);
    assert_eq!(st.containers["web"].path, PathEdit::Added);
    assert!(st.containers["web"].hash.starts_with("sha256:"));
    // Annotation keys are escaped in pointers.
    assert!(
        m.patch
            .0
            .iter()
            .any(|op| op.path().as_str() == "/metadata/annotations")
    );
}

#[test]
fn status_key_is_escaped_when_annotations_exist() {
    let mut v = web_pod();
    v["metadata"]["annotations"] = json!({"team": "shop"});
    let m = run(&pod(v));
    assert!(
        m.patch
            .0
            .iter()
            .any(|op| op.path().as_str() == "/metadata/annotations/landgate.dev~1status"),
        "{:?}",
        m.patch
    );
}

#[test]
fn second_pass_is_empty() {
    let first = run(&pod(web_pod()));
    let second = run(&first.pod);
    assert_eq!(second.outcome, Outcome::AlreadyWrapped);
    assert!(second.patch.0.is_empty());
    assert_eq!(second.policies, first.policies);
}

#[test]
fn init_container_passes_restricted() {
    let m = run(&pod(web_pod()));
    let init = &json_of(&m.pod)["spec"]["initContainers"][0];
    assert_eq!(
        init["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "seccompProfile": {"type": "RuntimeDefault"}
        })
    );
    assert_eq!(
        init["resources"],
        json!({"limits": {"cpu": "100m", "memory": "32Mi"},
               "requests": {"cpu": "10m", "memory": "16Mi"}})
    );
    let mut root = web_pod();
    root["spec"]["securityContext"] = json!({"runAsUser": 0});
    let m = run(&pod(root));
    let init = &json_of(&m.pod)["spec"]["initContainers"][0];
    assert_eq!(init["securityContext"]["runAsUser"], json!(LAUNCHER_UID));
}

#[test]
fn init_containers_and_native_sidecars() {
    let mut v = web_pod();
    v["spec"]["initContainers"] = json!([
        {"name": "migrate", "image": "app", "command": ["/app/migrate"]},
        {"name": "proxy", "image": "envoy", "command": ["envoy"], "restartPolicy": "Always",
         "ports": [{"containerPort": 15001}]}
    ]);
    let m = run(&pod(v));
    let p = json_of(&m.pod);
    let names: Vec<&str> = p["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["landgate-init", "migrate", "proxy"]);
    for (i, cmd) in [(1, "/app/migrate"), (2, "envoy")] {
        assert_eq!(
            p["spec"]["initContainers"][i]["command"],
            json!([LAUNCHER, "exec", "--", cmd])
        );
    }
    assert_eq!(p["spec"]["initContainers"][2]["restartPolicy"], "Always");
    assert_eq!(m.policies["proxy"].net.bind, Some(PortSet::from([15001])));
    assert_eq!(m.policies.len(), 3);
    assert!(run(&m.pod).patch.0.is_empty());
}

#[test]
fn exec_probes_and_hooks_are_wrapped() {
    let mut v = web_pod();
    v["spec"]["containers"][0]["livenessProbe"] =
        json!({"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 5});
    v["spec"]["containers"][0]["readinessProbe"] = json!({"httpGet": {"path": "/", "port": 8080}});
    v["spec"]["containers"][0]["startupProbe"] = json!({"exec": {"command": ["true"]}});
    v["spec"]["containers"][0]["lifecycle"] = json!({
        "postStart": {"exec": {"command": ["sh", "-c", "echo hi"]}},
        "preStop": {"sleep": {"seconds": 5}}
    });
    let m = run(&pod(v));
    let web = &json_of(&m.pod)["spec"]["containers"][0];
    assert_eq!(
        web["livenessProbe"]["exec"]["command"],
        json!([LAUNCHER, "exec", "--", "cat", "/tmp/healthy"])
    );
    assert_eq!(web["livenessProbe"]["periodSeconds"], 5);
    assert_eq!(
        web["readinessProbe"],
        json!({"httpGet": {"path": "/", "port": 8080}})
    );
    assert_eq!(
        web["startupProbe"]["exec"]["command"],
        json!([LAUNCHER, "exec", "--", "true"])
    );
    assert_eq!(
        web["lifecycle"]["postStart"]["exec"]["command"],
        json!([LAUNCHER, "exec", "--", "sh", "-c", "echo hi"])
    );
    assert_eq!(
        web["lifecycle"]["preStop"],
        json!({"sleep": {"seconds": 5}})
    );
    assert!(run(&m.pod).patch.0.is_empty());
}

#[test]
fn path_prefixed_kept_or_added() {
    let mut v = web_pod();
    v["spec"]["containers"][0]["env"] = json!([
        {"name": "PATH", "value": "/opt/app/bin:/usr/bin"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}
    ]);
    let m = run(&pod(v.clone()));
    let web = &json_of(&m.pod)["spec"]["containers"][0];
    assert_eq!(
        env(web, "PATH"),
        Some("/landgate/bin:/opt/app/bin:/usr/bin")
    );
    // valueFrom entries are kept as they are.
    assert_eq!(
        web["env"][1],
        json!({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}})
    );
    assert_eq!(
        status(&json_of(&m.pod)).containers["web"].path,
        PathEdit::Prefixed
    );
    assert!(run(&m.pod).patch.0.is_empty());

    v["spec"]["containers"][0]["env"] =
        json!([{"name": "PATH", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "p"}}}]);
    let m = run(&pod(v));
    assert!(
        m.warnings[0].contains("PATH comes from valueFrom"),
        "{:?}",
        m.warnings
    );
    let web = &json_of(&m.pod)["spec"]["containers"][0];
    assert_eq!(web["env"][0]["valueFrom"]["configMapKeyRef"]["key"], "p");
    assert!(run(&m.pod).patch.0.is_empty());
}

#[test]
fn envfrom_path_override_is_reported() {
    let mut v = web_pod();
    v["spec"]["containers"][0]["envFrom"] = json!([{"configMapRef": {"name": "env"}}]);
    let m = run(&pod(v));
    assert!(
        m.warnings[0].contains("replacing the image's own PATH and any PATH from envFrom"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn user_landgate_env_is_stripped_with_a_warning() {
    let mut v = web_pod();
    v["spec"]["containers"][0]["env"] = json!([
        {"name": "LANDGATE_POLICY", "value": "{\"v\":1}"},
        {"name": "A", "value": "1"},
        {"name": "LANDGATE_ACTIVE", "value": "1"}
    ]);
    let m = run(&pod(v));
    assert_eq!(
        m.warnings[0],
        "landgate: container \"web\": removed env LANDGATE_POLICY, LANDGATE_ACTIVE (the LANDGATE_* variables are landgate's; LANDGATE_POLICY is derived from the pod)"
    );
    assert!(m.warnings[1].contains("PATH set to /landgate/bin:"));
    let web = &json_of(&m.pod)["spec"]["containers"][0];
    let names: Vec<&str> = web["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "PATH", "LANDGATE_POLICY", "LANDGATE_ACTIVE"]);
    // Explicitly empty, so that an image's ENV cannot pre-set it.
    assert_eq!(web["env"][3], json!({"name": "LANDGATE_ACTIVE"}));
    assert_eq!(
        Policy::from_json(env(web, POLICY_ENV).unwrap()).unwrap(),
        m.policies["web"]
    );
    let second = run(&m.pod);
    assert!(second.patch.0.is_empty());
    assert!(second.warnings.is_empty());
}

#[test]
fn all_env_landgate_leaves_a_fresh_list() {
    let mut v = web_pod();
    v["spec"]["containers"][0]["env"] = json!([{"name": "LANDGATE_X", "value": "1"}]);
    let m = run(&pod(v));
    let web = &json_of(&m.pod)["spec"]["containers"][0];
    assert_eq!(web["env"].as_array().unwrap().len(), 3);
}

#[test]
fn a_later_active_marker_is_reset_on_reinvocation() {
    let wrapped = json_of(&run(&pod(web_pod())).pod);
    let mut v = wrapped.clone();
    let envs = v["spec"]["containers"][0]["env"].as_array_mut().unwrap();
    let marker = envs.iter_mut().find(|e| e["name"] == ACTIVE_ENV).unwrap();
    marker["value"] = json!("1");
    let m = run(&pod(v));
    assert_eq!(json_of(&m.pod), wrapped);
    assert!(
        m.warnings[0].contains("removed env LANDGATE_ACTIVE"),
        "{:?}",
        m.warnings
    );
}

fn args_only_pod() -> Value {
    let mut v = web_pod();
    v["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "istio-proxy", "image": "proxyv2", "args": ["proxy", "sidecar"]}));
    v
}

#[test]
fn unknown_entrypoint_admits_the_whole_pod_unwrapped() {
    for v in [args_only_pod(), {
        let mut v = web_pod();
        v["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .retain(|k, _| k != "command" && k != "args");
        v
    }] {
        let m = run(&pod(v.clone()));
        let Outcome::Skipped(reason) = &m.outcome else {
            panic!("{:?}", m.outcome)
        };
        assert!(reason.contains("image entrypoint unknown"), "{reason}");
        assert_eq!(m.warnings.len(), 1);
        assert!(m.policies.is_empty());
        let p = json_of(&m.pod);
        // Only the explanatory status and its label: never half-wrapped.
        assert_eq!(m.patch.0.len(), 2);
        assert_eq!(status(&p).skipped.as_deref(), Some(reason.as_str()));
        assert_eq!(p["metadata"]["labels"][PROFILE_LABEL], NOT_SANDBOXED);
        assert_eq!(
            p["spec"]["containers"][0]["command"],
            v["spec"]["containers"][0]["command"]
        );
        let again = run(&m.pod);
        assert!(again.patch.0.is_empty());
        assert_eq!(again.outcome, m.outcome);
    }
}

#[test]
fn unknown_entrypoint_refused_when_asked() {
    let settings = Settings {
        unknown_entrypoint: UnknownEntrypoint::Reject,
        ..Settings::default()
    };
    let err = refuse_with(&settings, &BTreeMap::new(), &pod(args_only_pod()));
    assert_eq!(
        err,
        "pod shop/web: container \"istio-proxy\" (spec.containers[1].command) sets only `args`, no `command`, so its image entrypoint is unknown at admission and landgate cannot wrap it; refused because the webhook runs with --unknown-entrypoint=reject. Set `command:` to the image's entrypoint (`docker inspect` shows it), or opt the pod out with landgate.dev/inject: \"false\" where its namespace allows it (landgate.dev/allow-opt-out: \"true\")"
    );
    let mut v = args_only_pod();
    v["metadata"]["annotations"] = json!({"landgate.dev/enforcement.web": "required"});
    let err = refuse(&pod(v));
    assert!(
        err.contains("container \"web\" requires enforcement (pod annotation landgate.dev/enforcement.web = required)"),
        "{err}"
    );
}

#[test]
fn skips_excluded_namespaces_mirror_and_windows_pods() {
    let p = pod(web_pod());
    let m = mutate_pod(
        &Settings::default(),
        PodContext {
            namespace: "kube-system",
            namespace_annotations: &BTreeMap::new(),
            images: crate::mutate::NO_IMAGES,
        },
        &p,
    )
    .unwrap();
    assert!(m.patch.0.is_empty());
    assert!(matches!(m.outcome, Outcome::Skipped(r) if r.contains("kube-system")));

    let mut v = web_pod();
    v["metadata"]["annotations"] = json!({MIRROR_ANNOTATION: "abc"});
    let m = run(&pod(v));
    assert!(m.patch.0.is_empty());
    assert!(matches!(m.outcome, Outcome::Skipped(r) if r.contains("mirror")));

    let mut v = web_pod();
    v["spec"]["os"] = json!({"name": "windows"});
    let m = run(&pod(v.clone()));
    assert!(matches!(&m.outcome, Outcome::Skipped(r) if r.contains("Windows")));
    assert!(json_of(&m.pod)["spec"].get("initContainers").is_none());

    let ns = BTreeMap::from([(ENFORCEMENT.to_owned(), "required".to_owned())]);
    let err = refuse_with(&Settings::default(), &ns, &pod(v));
    assert!(err.contains("Windows pod"), "{err}");
    assert!(
        err.contains("annotation landgate.dev/enforcement on namespace shop = required"),
        "{err}"
    );
}

#[test]
fn opt_out() {
    let mut v = web_pod();
    v["metadata"]["annotations"] = json!({INJECT: "false"});
    let allowed = BTreeMap::from([(ALLOW_OPT_OUT.to_owned(), "true".to_owned())]);
    let m = run_with(&Settings::default(), &allowed, &pod(v.clone()));
    let Outcome::Skipped(reason) = &m.outcome else {
        panic!()
    };
    assert_eq!(
        reason,
        "it opts out of landgate (pod annotation landgate.dev/inject = \"false\")"
    );
    assert_eq!(
        status(&json_of(&m.pod)).skipped.as_deref(),
        Some(reason.as_str())
    );
    assert!(m.warnings.is_empty());

    let mut ns = allowed.clone();
    ns.insert(ENFORCEMENT.to_owned(), "required".to_owned());
    let err = refuse_with(&Settings::default(), &ns, &pod(v.clone()));
    assert!(
        err.starts_with("pod shop/web: it opts out of landgate"),
        "{err}"
    );
    // The pod's own annotation outranks a flag (a namespace's `required` is
    // a floor: tests/floors.rs).
    let required = Settings {
        default_enforcement: landgate_policy::Enforcement::Required,
        ..Settings::default()
    };
    refuse_with(&required, &allowed, &pod(v.clone()));
    v["metadata"]["annotations"][ENFORCEMENT] = json!("best-effort");
    run_with(&required, &allowed, &pod(v));
}

#[test]
fn bad_annotation_names_pod_key_and_value() {
    let mut v = web_pod();
    v["metadata"]["annotations"] = json!({ENFORCEMENT: "bogus"});
    assert_eq!(
        refuse(&pod(v)),
        "pod shop/web: pod annotation landgate.dev/enforcement has invalid value \"bogus\": unknown enforcement \"bogus\": expected best-effort or required; fix or remove the annotation on the pod"
    );
}

#[test]
fn annotations_shape_the_policy() {
    let mut v = web_pod();
    v["metadata"]["annotations"] = json!({
        PROFILE: "ports-only",
        "landgate.dev/connect-ports.web": "5432,53",
    });
    let m = run(&pod(v));
    let policy = &m.policies["web"];
    assert_eq!(policy.fs, None);
    assert_eq!(policy.net.connect, Some(PortSet::from([53, 5432])));
    let _ = CONNECT_PORTS;
}

#[test]
fn reserved_names_and_paths_are_refused() {
    let mut v = web_pod();
    v["spec"]["volumes"][0]["name"] = json!("landgate");
    v["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("landgate");
    assert_eq!(
        refuse(&pod(v)),
        "pod shop/web: spec.volumes[0] is named \"landgate\", which landgate reserves for its launcher; rename the volume (and its volumeMounts)"
    );
    let mut v = web_pod();
    v["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!("/landgate/x");
    let err = refuse(&pod(v));
    assert!(
        err.contains("container \"web\" (spec.containers[0].volumeMounts[0]) mounts volume \"cache\" at /landgate/x"),
        "{err}"
    );
    let mut v = web_pod();
    v["spec"]["initContainers"] =
        json!([{"name": "landgate-init", "image": "x", "command": ["x"]}]);
    assert!(refuse(&pod(v)).contains("spec.initContainers[0] is named \"landgate-init\""));
}

#[test]
fn tampering_is_detected() {
    let wrapped = json_of(&run(&pod(web_pod())).pod);

    let mut v = wrapped.clone();
    v["spec"]["containers"][0]["command"] = json!(["nginx"]);
    let err = refuse(&pod(v));
    assert!(err.contains("container \"web\" (spec.containers[0]) was changed after landgate wrapped the pod (its command no longer starts with /landgate/landgate exec --)"), "{err}");

    let mut v = wrapped.clone();
    v["spec"]["containers"][0]["command"] = json!([LAUNCHER, "exec", "--", "sh"]);
    assert!(refuse(&pod(v)).contains("no longer match the hash"));

    let mut v = wrapped.clone();
    let envs = v["spec"]["containers"][0]["env"].as_array_mut().unwrap();
    let policy = envs.iter_mut().find(|e| e["name"] == POLICY_ENV).unwrap();
    policy["value"] = json!("{\"v\":1}");
    assert!(refuse(&pod(v)).contains("no longer match the hash"));

    let mut v = wrapped.clone();
    v["spec"]["initContainers"][0]["image"] = json!("evil/launcher");
    rebuilt_init(v);

    let mut v = wrapped.clone();
    v["spec"]["volumes"][1] = json!({"name": "landgate", "hostPath": {"path": "/"}});
    assert!(refuse(&pod(v)).contains("spec.volumes[1] (landgate)"));

    let mut v = wrapped;
    v["metadata"]["annotations"][derive::STATUS] = json!("{\"version\":7}");
    assert!(refuse(&pod(v)).contains("has version 7"));
}

#[test]
fn service_account_token_mount_on_landgate_init_is_not_tampering() {
    // What kube-apiserver's ServiceAccount admission plugin adds to every
    // container before it re-invokes landgate.
    let token = json!({
        "name": "kube-api-access-x7k2p",
        "readOnly": true,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"
    });
    let mut wrapped = json_of(&run(&pod(web_pod())).pod);
    wrapped["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "name": "kube-api-access-x7k2p",
            "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}
        }));
    let mut v = wrapped.clone();
    v["spec"]["initContainers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(token.clone());
    v["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(token.clone());
    assert_eq!(run(&pod(v.clone())).outcome, Outcome::AlreadyWrapped);

    let mut writable = token;
    writable["readOnly"] = json!(false);
    v["spec"]["initContainers"][0]["volumeMounts"][1] = writable;
    rebuilt_init(v);

    let mut v = wrapped;
    v["spec"]["initContainers"][0]["volumeMounts"] = json!([]);
    rebuilt_init(v);
}

#[test]
fn another_launcher_tag_or_wrapper_list_becomes_this_replicas() {
    // A reinvocation reaching a webhook replica from the next release,
    // or a copied pod pinning an older launcher without later fixes, or
    // a wrapper list without `sh`: landgate-init is rebuilt, not refused
    // (a rollout keeps working) and not kept (no downgrade).
    let wrapped = json_of(&run(&pod(web_pod())).pod);
    let mut v = wrapped.clone();
    v["spec"]["initContainers"][0]["image"] =
        json!("ghcr.io/landgate-dev/landgate-launcher@sha256:0123abcd");
    v["spec"]["initContainers"][0]["command"][4] = json!("nc");
    rebuilt_init(v);

    let mut v = wrapped;
    v["spec"]["initContainers"][0]["command"][4] = json!("sh,../../bin/evil");
    rebuilt_init(v);
}

#[test]
fn a_wrapped_container_reads_back_as_it_was() {
    let mut v = web_pod();
    let handler = json!({"exec": {"command": ["sh", "-c", "true"]}});
    let web = &mut v["spec"]["containers"][0];
    web["env"] = json!([{"name": "PATH", "value": "/usr/bin"}]);
    web["livenessProbe"] = handler.clone();
    web["startupProbe"] = json!({"exec": {"command": []}});
    web["lifecycle"] = json!({"preStop": handler, "postStart": {"sleep": {"seconds": 1}}});
    let before = pod(v);
    let wrapped = run(&before).pod;
    let spec = wrapped.spec.as_ref().unwrap();
    let settings = Settings::default();
    let no_annotations = BTreeMap::new();
    let engine = Pass::read(
        &settings,
        PodContext {
            namespace: "shop",
            namespace_annotations: &no_annotations,
            images: crate::mutate::NO_IMAGES,
        },
        &wrapped,
        spec,
        wrapped.metadata.annotations.as_ref().unwrap(),
        "shop/web".into(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        *engine.views[0].original,
        before.spec.as_ref().unwrap().containers[0]
    );
}

#[test]
fn defaulted_fields_are_not_tampering() {
    // The API server defaults fields of injected containers between passes.
    let mut v = json_of(&run(&pod(web_pod())).pod);
    v["spec"]["initContainers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    v["spec"]["initContainers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
    v["spec"]["containers"][0]["terminationMessagePolicy"] = json!("File");
    let m = run(&pod(v));
    assert_eq!(m.outcome, Outcome::AlreadyWrapped);
}

#[test]
fn reinvocation_wraps_added_containers_only() {
    let first = run(&pod(web_pod()));
    let mut v = json_of(&first.pod);
    v["spec"]["containers"].as_array_mut().unwrap().push(
        json!({"name": "log", "image": "fluent-bit", "command": ["/fluent-bit/bin/fluent-bit"]}),
    );
    let second = run(&pod(v));
    assert_eq!(second.outcome, Outcome::Wrapped);
    assert!(
        second
            .patch
            .0
            .iter()
            .all(|op| !op.path().as_str().starts_with("/spec/containers/0")
                && !op.path().as_str().starts_with("/spec/initContainers")),
        "{:?}",
        second.patch
    );
    let p = json_of(&second.pod);
    assert_eq!(
        p["spec"]["containers"][0]["command"],
        json!([LAUNCHER, "exec", "--", "nginx"])
    );
    assert_eq!(
        p["spec"]["containers"][1]["command"],
        json!([LAUNCHER, "exec", "--", "/fluent-bit/bin/fluent-bit"])
    );
    assert_eq!(status(&p).containers.len(), 2);
    assert!(run(&second.pod).patch.0.is_empty());
}

#[test]
fn reinvocation_moves_landgate_init_first() {
    let first = run(&pod(web_pod()));
    let mut v = json_of(&first.pod);
    v["spec"]["initContainers"].as_array_mut().unwrap().insert(
        0,
        json!({"name": "mesh-init", "image": "mesh", "command": ["/init"]}),
    );
    let second = run(&pod(v));
    let p = json_of(&second.pod);
    assert_eq!(p["spec"]["initContainers"][0]["name"], "landgate-init");
    assert_eq!(
        p["spec"]["initContainers"][1]["command"],
        json!([LAUNCHER, "exec", "--", "/init"])
    );
    assert!(run(&second.pod).patch.0.is_empty());
}

#[test]
fn reinvocation_rederives_the_policy() {
    let first = run(&pod(web_pod()));
    let mut v = json_of(&first.pod);
    v["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "secrets", "mountPath": "/vault/secrets"}));
    let second = run(&pod(v));
    assert_eq!(second.outcome, Outcome::Wrapped);
    let rw = &second.policies["web"].fs.as_ref().unwrap().rw;
    assert!(rw.contains(&"/vault/secrets".parse().unwrap()));
    assert!(run(&second.pod).patch.0.is_empty());
}

#[test]
fn reinvocation_that_must_skip_unwraps_everything() {
    let mut base = web_pod();
    base["spec"]["containers"][0]["env"] = json!([{"name": "PATH", "value": "/usr/bin"}]);
    base["spec"]["containers"][0]["livenessProbe"] = json!({"exec": {"command": ["true"]}});
    let first = run(&pod(base.clone()));
    let mut v = json_of(&first.pod);
    let sidecar = json!({"name": "istio-proxy", "image": "proxyv2", "args": ["proxy"]});
    v["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(sidecar.clone());
    let second = run(&pod(v));
    assert!(matches!(second.outcome, Outcome::Skipped(_)));

    // Same as if landgate had seen the sidecar on the first pass.
    base["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(sidecar);
    let direct = run(&pod(base));
    assert_eq!(json_of(&second.pod), json_of(&direct.pod));
}

#[test]
fn host_network_pods_are_wrapped() {
    let mut v = web_pod();
    v["spec"]["hostNetwork"] = json!(true);
    v["spec"]["containers"][0]["ports"] = json!([{"containerPort": 9100, "hostPort": 9100}]);
    let m = run(&pod(v));
    assert_eq!(m.outcome, Outcome::Wrapped);
    assert_eq!(m.policies["web"].net.bind, Some(PortSet::from([9100])));
}

#[test]
fn zero_and_fifty_containers() {
    let m = run(&pod(
        json!({"metadata": {"name": "empty"}, "spec": {"containers": []}}),
    ));
    assert!(matches!(m.outcome, Outcome::Skipped(r) if r == "pod has no containers"));

    let containers: Vec<Value> = (0..50)
        .map(|i| {
            json!({"name": format!("c{i}"), "image": "busybox", "command": ["sleep", "1d"],
                        "ports": [{"containerPort": 8000 + i}]})
        })
        .collect();
    let m = run(&pod(
        json!({"metadata": {"name": "many"}, "spec": {"containers": containers}}),
    ));
    assert_eq!(m.outcome, Outcome::Wrapped);
    assert_eq!(m.policies.len(), 50);
    assert_eq!(m.policies["c49"].net.bind, Some(PortSet::from([8049])));
    assert!(run(&m.pod).patch.0.is_empty());
}

#[test]
fn duplicate_container_names_are_refused() {
    let mut v = web_pod();
    let dup = v["spec"]["containers"][0].clone();
    v["spec"]["initContainers"] = json!([dup]);
    assert!(refuse(&pod(v)).contains("container name \"web\" is used twice"));
}

#[test]
fn ephemeral_containers_are_reported() {
    let mut v = web_pod();
    v["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]);
    let m = run(&pod(v));
    assert!(m.warnings[0].contains("ephemeralContainers are not wrapped"));
}

/// `kubectl get pods -L landgate.dev/profile` shows how each pod runs: its
/// containers' profile, `mixed`, or `none`; a second pass leaves it.
#[test]
fn the_profile_label_sums_the_pod_up() {
    let two = |annotations: Value| {
        pod(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "annotations": annotations},
            "spec": {"containers": [
                {"name": "web", "image": "nginx:1.27", "command": ["nginx"]},
                {"name": "side", "image": "envoy:1.31", "command": ["envoy"]}
            ]}
        }))
    };
    for (annotations, label) in [
        (json!({}), "baseline"),
        (json!({PROFILE: "strict"}), "strict"),
        (json!({format!("{PROFILE}.side"): "strict"}), MIXED_PROFILES),
        (json!({INJECT: "false"}), NOT_SANDBOXED),
    ] {
        // The namespace allows the opt-out of the last case.
        let ns: BTreeMap<String, String> = [(ALLOW_OPT_OUT.to_owned(), "true".to_owned())].into();
        let m = run_with(&Settings::default(), &ns, &two(annotations.clone()));
        let p = json_of(&m.pod);
        assert_eq!(
            p["metadata"]["labels"][PROFILE_LABEL], label,
            "{annotations}"
        );
        let again = run_with(&Settings::default(), &ns, &m.pod);
        assert!(again.patch.0.is_empty(), "{annotations}: {:?}", again.patch);
    }
}
