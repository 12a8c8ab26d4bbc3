//! Property tests of the mutation engine on generated Pods:
//!
//! - the patch applies cleanly to the pod (no add under a missing parent,
//!   no remove of a missing path) and gives exactly the pod the engine
//!   reports;
//! - mutating twice equals mutating once (empty patch on the second pass),
//!   and the validating webhook admits every pod the mutating pass stored,
//!   with the outcome of the second pass;
//! - a wrapped pod is wrapped entirely (never half-wrapped), with each
//!   container's `LANDGATE_POLICY` equal to the reported policy;
//! - reinvocation after another webhook appended a container gives the same
//!   pod as seeing that container on the first pass (nothing wrapped twice).
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use landgate_engine::mutate::{INIT_CONTAINER_NAME, LAUNCHER, MutateError, PodContext, mutate_pod};
use landgate_engine::settings::Settings;
use landgate_engine::{Outcome, validate_pod};
use proptest::prelude::*;
use serde_json::{Value, json};

mod support;
use support::Run;

fn pick(values: &'static [&'static str]) -> impl Strategy<Value = &'static str> + Clone {
    proptest::sample::select(values)
}

fn env_entry() -> impl Strategy<Value = Value> {
    (
        pick(&["PATH", "A", "B_C", "LANDGATE_POLICY", "LANDGATE_ACTIVE"]),
        prop_oneof![
            // No "": the API server omits empty values, like an absent one below.
            3 => pick(&["/usr/bin:/bin", "x", "$(A)"]).prop_map(|v| json!({ "value": v })),
            1 => Just(json!({"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})),
            1 => Just(json!({})),
        ],
    )
        .prop_map(|(name, mut v)| {
            v["name"] = json!(name);
            v
        })
}

fn port() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(80), Just(8080), 1..70_000i32],
        proptest::option::of(pick(&["TCP", "UDP", "SCTP"])),
        proptest::option::of(pick(&["http", "metrics"])),
    )
        .prop_map(|(n, proto, name)| {
            let mut v = json!({ "containerPort": n });
            if let Some(p) = proto {
                v["protocol"] = json!(p);
            }
            if let Some(name) = name {
                v["name"] = json!(name);
            }
            v
        })
}

fn mount() -> impl Strategy<Value = Value> {
    (
        pick(&["data", "conf", "cache"]),
        pick(&[
            "/data",
            "/tmp",
            "/var/cache/app",
            "/etc/app",
            "/usr/share/x",
            "relative",
            "/landgate",
        ]),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(name, path, ro)| {
            let mut v = json!({ "name": name, "mountPath": path });
            if let Some(ro) = ro {
                v["readOnly"] = json!(ro);
            }
            v
        })
}

fn exec_probe() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(prop_oneof![
        pick(&["true", "cat", "/bin/check"]).prop_map(|c| json!({"exec": {"command": [c, "-x"]}})),
        Just(json!({"httpGet": {"path": "/", "port": 8080}})),
        Just(json!({"exec": {}})),
    ])
}

/// Lists are absent or non-empty, as the API server sends them (Go's
/// `omitempty` drops empty lists and strings); the engine treats an empty
/// list like an absent one when adding to it.
fn container(name: String, init: bool) -> impl Strategy<Value = Value> {
    let command = prop_oneof![
        8 => proptest::collection::vec(pick(&["/app/server", "nginx", "sh", "-c", "run it", "/manager"]), 1..4)
            .prop_map(Some),
        1 => Just(None),
        1 => Just(Some(vec![])),
    ];
    (
        command,
        proptest::option::of(proptest::collection::vec(pick(&["--flag", "x"]), 1..3)),
        proptest::option::of(proptest::collection::vec(env_entry(), 1..4)),
        proptest::option::of(proptest::collection::vec(port(), 1..3)),
        proptest::option::of(proptest::collection::vec(mount(), 1..3)),
        proptest::option::of(pick(&["/", "/app", "/usr/src/app", "/srv"])),
        (exec_probe(), exec_probe(), exec_probe()),
        proptest::option::of(any::<bool>()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(command, args, env, ports, mounts, wd, probes, ro, sidecar, envfrom)| {
                let mut c = json!({ "name": name, "image": "img" });
                let mut set = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        c[k] = v;
                    }
                };
                set("command", command.map(|c| json!(c)));
                set("args", args.map(|a| json!(a)));
                set("env", env.map(Value::from));
                set("ports", ports.map(Value::from));
                set("volumeMounts", mounts.map(Value::from));
                set("workingDir", wd.map(Value::from));
                set("livenessProbe", probes.0);
                set("readinessProbe", probes.1);
                set(
                    "lifecycle",
                    probes.2.map(|p| json!({ "postStart": p, "preStop": p })),
                );
                set(
                    "securityContext",
                    ro.map(|ro| json!({ "readOnlyRootFilesystem": ro })),
                );
                set("restartPolicy", (init && sidecar).then(|| json!("Always")));
                set(
                    "envFrom",
                    envfrom.then(|| json!([{"configMapRef": {"name": "env"}}])),
                );
                c
            },
        )
}

fn containers(prefix: &'static str, max: usize) -> impl Strategy<Value = Vec<Value>> {
    (0..=max).prop_flat_map(move |n| {
        (0..n)
            .map(|i| container(format!("{prefix}{i}"), prefix == "init"))
            .collect::<Vec<_>>()
    })
}

fn annotations() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(
        (
            proptest::option::of(pick(&["baseline", "strict", "ports-only"])),
            proptest::option::of(pick(&["", "53,443"])),
            proptest::option::of(pick(&["true", "false"])),
            proptest::option::of(pick(&["best-effort", "required"])),
            proptest::option::of(pick(&["/srv/data", "/var/x,/y"])),
            any::<bool>(),
        )
            .prop_map(|(profile, connect, inject, enforcement, writable, other)| {
                let mut a = serde_json::Map::new();
                let mut put = |k: &str, v: Option<&str>| {
                    if let Some(v) = v {
                        a.insert(k.to_owned(), json!(v));
                    }
                };
                put("landgate.dev/profile.app0", profile);
                put("landgate.dev/connect-ports", connect);
                put("landgate.dev/inject", inject);
                put("landgate.dev/enforcement", enforcement);
                put("landgate.dev/writable-paths", writable);
                put("example.com/team", other.then_some("shop"));
                Value::Object(a)
            }),
    )
}

fn pod() -> impl Strategy<Value = Value> {
    (
        containers("init", 2),
        containers("app", 3),
        annotations(),
        proptest::option::of(Just(
            json!([{"name": "data", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "c"}}]),
        )),
        prop_oneof![8 => Just(None), 1 => Just(Some("windows")), 1 => Just(Some("linux"))],
        any::<bool>(),
    )
        .prop_map(|(init, app, annotations, volumes, os, host_network)| {
            let mut p = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "shop"},
                "spec": {"containers": app},
            });
            if !init.is_empty() {
                p["spec"]["initContainers"] = json!(init);
            }
            if let Some(a) = annotations {
                p["metadata"]["annotations"] = a;
            }
            if let Some(v) = volumes {
                p["spec"]["volumes"] = v;
            }
            if let Some(os) = os {
                p["spec"]["os"] = json!({ "name": os });
            }
            if host_network {
                p["spec"]["hostNetwork"] = json!(true);
            }
            p
        })
}

/// The engine's answer with its patch applied; a patch that does not apply
/// fails the property.
fn mutate(pod: &Pod) -> Result<Run, MutateError> {
    mutate_pod(&Settings::default(), SHOP, pod)
        .map(|m| Run::of(pod, m).unwrap_or_else(|e| panic!("{e}")))
}

/// The validating webhook's judgement of a pod as stored.
fn validate(pod: &Pod) -> Outcome {
    validate_pod(&Settings::default(), SHOP, pod)
}

/// Namespace `shop`, which sets nothing; no image looked up.
const SHOP: PodContext<'static> = PodContext {
    namespace: "shop",
    namespace_annotations: &BTreeMap::new(),
    images: landgate_engine::mutate::NO_IMAGES,
};

fn to_pod(v: &Value) -> Pod {
    serde_json::from_value(v.clone()).expect("generated pods deserialize")
}

/// The patch applies to the pod's JSON and gives the pod `m` holds.
fn check_patch(input: &Pod, m: &Run) -> Result<(), TestCaseError> {
    let mut doc = serde_json::to_value(input).unwrap();
    json_patch::patch(&mut doc, &m.patch)
        .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}\n{:?}", m.patch)))?;
    prop_assert_eq!(&doc, &serde_json::to_value(&m.pod).unwrap());
    Ok(())
}

fn check_wrapped_entirely(m: &Run) -> Result<(), TestCaseError> {
    let p = serde_json::to_value(&m.pod).unwrap();
    let init = p["spec"]["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    prop_assert_eq!(&init[0]["name"], &json!(INIT_CONTAINER_NAME));
    let app = p["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let wrapped: Vec<&Value> = init.iter().skip(1).chain(app.iter()).collect();
    prop_assert_eq!(wrapped.len(), m.policies.len());
    for c in wrapped {
        let name = c["name"].as_str().unwrap();
        prop_assert_eq!(&c["command"][0], &json!(LAUNCHER), "{}", name);
        let env = c["env"].as_array().unwrap();
        let landgate: Vec<&Value> = env
            .iter()
            .filter(|e| e["name"].as_str().unwrap().starts_with("LANDGATE_"))
            .collect();
        // Exactly landgate's two: the policy, and the marker set empty.
        prop_assert_eq!(landgate.len(), 2, "{}: {:?}", name, env);
        prop_assert_eq!(&landgate[0]["name"], &json!("LANDGATE_POLICY"));
        prop_assert_eq!(
            landgate[0]["value"].as_str().unwrap(),
            m.policies[name].to_json()
        );
        prop_assert_eq!(landgate[1], &json!({"name": "LANDGATE_ACTIVE"}));
        let mounts = c["volumeMounts"].as_array().unwrap();
        prop_assert_eq!(
            mounts
                .iter()
                .filter(|m| m["mountPath"] == "/landgate")
                .count(),
            1
        );
    }
    Ok(())
}

fn strip_landgate_env(pod: &mut Value) {
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) else {
                continue;
            };
            env.retain(|e| {
                !e["name"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("LANDGATE_")
            });
            if env.is_empty() {
                c.as_object_mut().unwrap().remove("env");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn patch_applies_and_second_pass_is_empty(v in pod()) {
        let input = to_pod(&v);
        let Ok(first) = mutate(&input) else {
            return Ok(());
        };
        check_patch(&input, &first)?;
        if first.outcome == Outcome::Wrapped {
            check_wrapped_entirely(&first)?;
        } else {
            // Skipped: the containers are untouched.
            prop_assert_eq!(
                serde_json::to_value(&first.pod.spec).unwrap(),
                serde_json::to_value(&input.spec).unwrap()
            );
            prop_assert!(first.policies.is_empty());
        }
        let second = mutate(&first.pod).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(second.patch.0.is_empty(), "{:?}", second.patch);
        let expected = match &first.outcome {
            Outcome::Wrapped | Outcome::AlreadyWrapped => Outcome::AlreadyWrapped,
            skipped => skipped.clone(),
        };
        prop_assert_eq!(&second.outcome, &expected);
        prop_assert_eq!(second.policies, first.policies);
        prop_assert_eq!(validate(&first.pod), expected);
    }

    #[test]
    fn reinvocation_equals_a_single_pass(v in pod(), extra in container("late".into(), false)) {
        let input = to_pod(&v);
        let Ok(first) = mutate(&input) else {
            return Ok(());
        };
        let mut later = serde_json::to_value(&first.pod).unwrap();
        later["spec"]["containers"].as_array_mut().unwrap().push(extra.clone());
        let mut direct = v.clone();
        direct["spec"]["containers"].as_array_mut().unwrap().push(extra);

        let later_pod = to_pod(&later);
        match (mutate(&later_pod), mutate(&to_pod(&direct))) {
            (Ok(reinvoked), Ok(single)) => {
                check_patch(&later_pod, &reinvoked)?;
                let (mut a, mut b) = (
                    serde_json::to_value(&reinvoked.pod).unwrap(),
                    serde_json::to_value(&single.pod).unwrap(),
                );
                if matches!(single.outcome, Outcome::Skipped(_)) {
                    // The one step a revert cannot undo: user-supplied
                    // LANDGATE_* env, removed by the first pass.
                    strip_landgate_env(&mut a);
                    strip_landgate_env(&mut b);
                }
                prop_assert_eq!(a, b);
                prop_assert_eq!(reinvoked.policies, single.policies);
            }
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "reinvocation {:?} vs single pass {:?}",
                a.map(|m| m.outcome), b.map(|m| m.outcome)),
        }
    }
}
