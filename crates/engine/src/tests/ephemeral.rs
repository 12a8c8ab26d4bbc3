//! `kubectl debug` (issue 12): an ephemeral container added to a wrapped pod
//! is wrapped like the pod's own containers; its shape is its record, which
//! the validating check and the exec decision verify by deriving it again.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use landgate_policy::{POLICY_ENV, Policy, argv};
use serde_json::{Value, json};

use crate::derive::{CONNECT_PORTS, ENFORCEMENT, EXEC, PROFILE, WRITABLE_PATHS};
use crate::ephemeral::Ephemeral;
use crate::exec::{Connect, ExecDecision, decide_exec};
use crate::image::{ImageConfig, ImageLookup, Images, LookupFailure};
use crate::mutate::*;
use crate::settings::Settings;
use crate::update::{UpdateError, check_update};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// `pod` as landgate stored it (through the real engine).
fn stored(pod: Value) -> Pod {
    let pod: Pod = serde_json::from_value(pod).unwrap();
    let context = PodContext {
        namespace: "shop",
        namespace_annotations: &BTreeMap::new(),
        images: NO_IMAGES,
    };
    let m = mutate_pod(&Settings::default(), context, &pod).unwrap();
    crate::patch::apply(&pod, &m.patch).unwrap()
}

/// A wrapped pod: `app` serving on 8080, writing `/data`.
fn wrapped() -> Pod {
    stored(json!({
        "metadata": {"name": "web"},
        "spec": {
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{
                "name": "app",
                "image": "busybox:1.36",
                "command": ["httpd", "-f"],
                "ports": [{"containerPort": 8080}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]
            }]
        }
    }))
}

/// What `kubectl debug -it web --image=busybox:1.36 --target=app -- sh`
/// adds, with `extra` fields.
fn debugger(extra: Value) -> Value {
    let mut c = json!({
        "name": "debugger",
        "image": "busybox:1.36",
        "command": ["sh"],
        "stdin": true,
        "tty": true,
        "targetContainerName": "app",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent"
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        c[k] = v.clone();
    }
    c
}

fn with_debugger(pod: &Pod, container: Value) -> Pod {
    let mut value = serde_json::to_value(pod).unwrap();
    value["spec"]["ephemeralContainers"]
        .as_array_mut()
        .map(|list| list.push(container.clone()))
        .unwrap_or_else(|| value["spec"]["ephemeralContainers"] = json!([container]));
    serde_json::from_value(value).unwrap()
}

fn namespace(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The mutating webhook's answer for `old` → `new`, and `new` patched.
fn wrap_in(
    ns: &[(&str, &str)],
    images: &Images,
    old: &Pod,
    new: &Pod,
) -> Result<(Mutation, Pod), UpdateError> {
    let ns = namespace(ns);
    let context = PodContext {
        namespace: "shop",
        namespace_annotations: &ns,
        images,
    };
    let settings = Settings::default();
    let containers = Ephemeral::read(&settings, context, new)?.expect("the pod is wrapped");
    let m = containers.wrap(old, images)?;
    let patched = crate::patch::apply(new, &m.patch).expect("the patch applies");
    Ok((m, patched))
}

fn wrap(old: &Pod, new: &Pod) -> (Mutation, Pod) {
    wrap_in(&[], NO_IMAGES, old, new).unwrap()
}

/// The validating webhook's check of `old` → `new`.
fn check_in(ns: &[(&str, &str)], old: &Pod, new: &Pod) -> Result<(), UpdateError> {
    let ns = namespace(ns);
    let context = PodContext {
        namespace: "shop",
        namespace_annotations: &ns,
        images: NO_IMAGES,
    };
    check_update(&Settings::default(), context, old, new).map(|_| ())
}

fn exec_in(ns: &[(&str, &str)], pod: &Pod, container: &str, request: Connect) -> ExecDecision {
    decide_exec(pod, "shop", &namespace(ns), Some(container), request)
}

fn ephemeral(pod: &Pod, index: usize) -> Value {
    serde_json::to_value(pod).unwrap()["spec"]["ephemeralContainers"][index].clone()
}

fn env_of(c: &Value, name: &str) -> Option<String> {
    c["env"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].as_str().unwrap_or_default().to_owned())
}

fn policy_of(c: &Value) -> Policy {
    let raw = env_of(c, POLICY_ENV).expect("LANDGATE_POLICY");
    Policy::from_json(&raw.replace("$$", "$")).unwrap()
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_debug_container_is_wrapped_with_the_pods_sandbox_and_no_ports() {
    let old = wrapped();
    let new = with_debugger(
        &old,
        debugger(json!({"volumeMounts": [{"name": "data", "mountPath": "/data"}]})),
    );
    let (m, stored) = wrap(&old, &new);
    assert_eq!(m.outcome, Outcome::Wrapped);
    // Only the new container is patched: the subresource keeps nothing else.
    for op in &m.patch.0 {
        assert!(
            op.path()
                .to_string()
                .starts_with("/spec/ephemeralContainers/0"),
            "{op:?}"
        );
    }
    let c = ephemeral(&stored, 0);
    assert_eq!(c["command"], json!(argv::exec(&words(&["sh"]))));
    assert_eq!(c["targetContainerName"], "app");
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "landgate", "mountPath": "/landgate", "readOnly": true})),
        "{c}"
    );
    assert!(env_of(&c, "PATH").unwrap().starts_with("/landgate/bin:"));
    let policy = policy_of(&c);
    assert!(
        policy.net.bind.as_ref().is_some_and(|b| b.is_empty()),
        "no ports: {policy:?}"
    );
    let fs = policy.fs.as_ref().expect("baseline has fs rules");
    assert!(fs.rw.iter().any(|p| p.to_string() == "/data"), "{fs:?}");
    assert_eq!(m.policies["debugger"], policy);
}

#[test]
fn a_wrapped_debug_container_passes_validation_and_a_second_pass() {
    let old = wrapped();
    let (_, stored) = wrap(&old, &with_debugger(&old, debugger(json!({}))));
    assert_eq!(check_in(&[], &old, &stored), Ok(()));
    // Reinvocation: the mutating webhook sees its own work.
    let (again, _) = wrap(&old, &stored);
    assert_eq!(again.outcome, Outcome::AlreadyWrapped);
    assert!(again.patch.0.is_empty(), "{:?}", again.patch);
}

#[test]
fn an_unwrapped_debug_container_is_refused_by_validation() {
    let old = wrapped();
    let new = with_debugger(&old, debugger(json!({})));
    let message = check_in(&[], &old, &new).unwrap_err().to_string();
    for part in [
        "pod shop/web",
        "ephemeral container \"debugger\" (spec.ephemeralContainers[0])",
        "its command does not start with /landgate/landgate exec --",
        "landgate.dev/exec is \"sandboxed\" by default",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

/// A debug container forged to look wrapped, with a policy of its own
/// (any port, every path writable), is not admitted. (Exec trusts the shape
/// of a stored one: only this check lets one with the launcher mount in.)
#[test]
fn a_forged_wrapped_shape_is_refused() {
    let old = wrapped();
    let (_, stored) = wrap(&old, &with_debugger(&old, debugger(json!({}))));
    let mut forged = ephemeral(&stored, 0);
    let env = forged["env"].as_array_mut().unwrap();
    let policy = env.iter_mut().find(|e| e["name"] == POLICY_ENV).unwrap();
    policy["value"] = json!(r#"{"v":1}"#);
    let new = with_debugger(&old, forged);
    let message = check_in(&[], &old, &new).unwrap_err().to_string();
    assert!(message.contains("its env differ"), "{message}");
    // The mutating webhook does not take it for its own either: its
    // launcher mount is refused as any tenant mount of the volume.
    let refused = wrap_in(&[], NO_IMAGES, &old, &new).unwrap_err();
    assert!(
        refused.to_string().contains("mounts volume \"landgate\""),
        "{refused}"
    );
}

#[test]
fn exec_into_a_wrapped_debug_container_runs_through_the_launcher() {
    let old = wrapped();
    let (_, stored) = wrap(&old, &with_debugger(&old, debugger(json!({}))));
    let ls = words(&["/bin/ls", "/"]);
    assert_eq!(
        exec_in(&[], &stored, "debugger", Connect::Exec(&ls)),
        ExecDecision::Rewrite(argv::exec(&ls))
    );
    assert!(matches!(
        exec_in(&[], &stored, "debugger", Connect::Attach),
        ExecDecision::Pass(_)
    ));
}

/// Exec trusts a stored debug container by its shape, not by deriving its
/// policy again: settings that change later (the namespace's, the
/// webhook's flags) must not lock users out of a debug container that still
/// runs (review finding: exec and attach were refused after any drift).
#[test]
fn exec_into_a_wrapped_debug_container_survives_later_setting_changes() {
    let old = wrapped();
    let (_, stored) = wrap(&old, &with_debugger(&old, debugger(json!({}))));
    let tightened = [(CONNECT_PORTS, "443"), (PROFILE, "strict")];
    let ls = words(&["ls"]);
    assert_eq!(
        exec_in(&tightened, &stored, "debugger", Connect::Exec(&ls)),
        ExecDecision::Rewrite(argv::exec(&ls))
    );
    assert!(matches!(
        exec_in(&tightened, &stored, "debugger", Connect::Attach),
        ExecDecision::Pass(_)
    ));
}

/// A pod that requires enforcement, whose `app` has a PATH directory on a
/// volume it mounts read-only: a sidecar writing that volume is refused at
/// creation, so a debug container writing it is refused too; so is a
/// later debug container whose PATH an earlier one writes (review
/// finding: ephemeral writers were not seen).
#[test]
fn a_debug_container_may_not_make_a_required_path_writable() {
    let created = |containers: Value| {
        stored(json!({
            "metadata": {"name": "web", "annotations": {ENFORCEMENT: "required"}},
            "spec": {"volumes": [{"name": "tools", "emptyDir": {}}], "containers": containers}
        }))
    };
    let app = json!({
        "name": "app", "image": "busybox:1.36", "command": ["httpd", "-f"],
        "env": [{"name": "PATH", "value": "/tools:/usr/bin:/bin"}],
        "volumeMounts": [{"name": "tools", "mountPath": "/tools", "readOnly": true}]
    });
    let old = created(json!([app]));
    let writer = debugger(json!({"volumeMounts": [{"name": "tools", "mountPath": "/w"}]}));
    let new = with_debugger(&old, writer.clone());
    let refused = wrap_in(&[], NO_IMAGES, &old, &new).unwrap_err().to_string();
    assert!(
        refused.contains("its writable mounts reach another container's PATH")
            && refused.contains("PATH has /tools"),
        "{refused}"
    );
    // The validating webhook, given the writer wrapped exactly as landgate
    // wraps it (its policy does not depend on `app`: wrapped beside an
    // `app` without the PATH, in a pod with the same settings and volumes).
    let plain_app = json!({"name": "app", "image": "busybox:1.36", "command": ["httpd", "-f"]});
    let free = created(json!([plain_app]));
    let (_, shaped) = wrap(&free, &with_debugger(&free, writer));
    let mut as_wrapped = new.clone();
    as_wrapped.spec.as_mut().unwrap().ephemeral_containers =
        shaped.spec.unwrap().ephemeral_containers;
    let refused = check_in(&[], &old, &as_wrapped).unwrap_err().to_string();
    assert!(refused.contains("PATH has /tools"), "{refused}");

    // B2: the earlier debug container writes the volume; a later one puts
    // it on its own PATH.
    let old = free;
    let first = debugger(json!({"volumeMounts": [{"name": "tools", "mountPath": "/w"}]}));
    let (_, one) = wrap(&old, &with_debugger(&old, first));
    let mut second = debugger(json!({
        "env": [{"name": "PATH", "value": "/tools:/usr/bin:/bin"}],
        "volumeMounts": [{"name": "tools", "mountPath": "/tools", "readOnly": true}]
    }));
    second["name"] = json!("debugger-2");
    let refused = wrap_in(&[], NO_IMAGES, &one, &with_debugger(&one, second))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("PATH has /tools"), "{refused}");
}

#[test]
fn deny_refuses_debug_containers() {
    let old = wrapped();
    let new = with_debugger(&old, debugger(json!({})));
    let deny = [(EXEC, "deny")];
    for message in [
        wrap_in(&deny, NO_IMAGES, &old, &new)
            .unwrap_err()
            .to_string(),
        check_in(&deny, &old, &new).unwrap_err().to_string(),
    ] {
        assert!(
            message.contains("debug containers are refused: annotation landgate.dev/exec on namespace shop = \"deny\""),
            "{message}"
        );
    }
}

/// Under `allow` a debug container runs as it is (audited by the
/// outcome); exec into it is allowed, like any exec there. Once the
/// namespace tightens to `sandboxed`, exec into it is refused: it never
/// ran through the launcher.
#[test]
fn allow_admits_debug_containers_unwrapped() {
    let old = wrapped();
    let new = with_debugger(&old, debugger(json!({})));
    let allow = [(EXEC, "allow")];
    let (m, stored) = wrap_in(&allow, NO_IMAGES, &old, &new).unwrap();
    assert!(m.patch.0.is_empty());
    assert!(
        matches!(&m.outcome, Outcome::Skipped(why) if why.contains("debugger") && why.contains("\"allow\"")),
        "{:?}",
        m.outcome
    );
    assert_eq!(check_in(&allow, &old, &stored), Ok(()));
    assert!(matches!(
        exec_in(&[], &stored, "debugger", Connect::Exec(&words(&["sh"]))),
        ExecDecision::Refuse(_)
    ));
}

#[test]
fn without_a_command_the_image_is_looked_up_or_the_container_refused() {
    let old = wrapped();
    let image = "registry.example:5000/tools/debug:1";
    let new = with_debugger(&old, debugger(json!({"image": image, "command": null})));
    // Not looked up (--no-resolve), or the lookup failed: refused, saying
    // how to name what it runs.
    let failed: Images = BTreeMap::from([(
        image.to_owned(),
        ImageLookup::Failed {
            cause: LookupFailure::Timeout,
            message: "no answer".into(),
        },
    )]);
    for images in [NO_IMAGES, &failed] {
        let err = wrap_in(&[], images, &old, &new).unwrap_err();
        let message = err.to_string();
        assert_eq!(err.reason(), "unknown-entrypoint");
        assert!(message.contains("-- sh"), "{message}");
        assert!(message.contains(image), "{message}");
    }
    assert!(
        wrap_in(&[], &failed, &old, &new)
            .unwrap_err()
            .to_string()
            .contains("no answer")
    );

    let resolved: Images = BTreeMap::from([(
        image.to_owned(),
        ImageLookup::Resolved(Arc::new(ImageConfig {
            digest: DIGEST.to_owned(),
            entrypoint: vec!["/bin/sh".into()],
            cmd: vec!["-l".into()],
            path: Some("/usr/sbin:/usr/bin:/bin".into()),
            working_dir: Some("/root".into()),
            user: None,
            platform_disagreement: None,
        })),
    )]);
    let (m, stored) = wrap_in(&[], &resolved, &old, &new).unwrap();
    assert_eq!(m.outcome, Outcome::Wrapped);
    let c = ephemeral(&stored, 0);
    assert_eq!(c["command"], json!(argv::exec(&words(&["/bin/sh"]))));
    assert_eq!(c["args"], json!(["-l"]));
    assert_eq!(c["workingDir"], "/root");
    assert_eq!(c["image"], format!("{image}@{DIGEST}"));
    assert_eq!(
        env_of(&c, "PATH").as_deref(),
        Some("/landgate/bin:/usr/sbin:/usr/bin:/bin")
    );
    // What the mutating webhook wrote from the image verifies without it.
    assert_eq!(check_in(&[], &old, &stored), Ok(()));

    // With a command, the image still gives PATH and the pin.
    let with_command = with_debugger(&old, debugger(json!({"image": image})));
    let (_, stored) = wrap_in(&[], &resolved, &old, &with_command).unwrap();
    let c = ephemeral(&stored, 0);
    assert_eq!(c["command"], json!(argv::exec(&words(&["sh"]))));
    assert_eq!(c["image"], format!("{image}@{DIGEST}"));
    assert_eq!(
        env_of(&c, "PATH").as_deref(),
        Some("/landgate/bin:/usr/sbin:/usr/bin:/bin")
    );
    assert_eq!(check_in(&[], &old, &stored), Ok(()));
}

#[test]
fn a_debug_container_may_not_reach_the_launcher() {
    let old = wrapped();
    for mounts in [
        json!([{"name": "landgate", "mountPath": "/lg"}]),
        json!([{"name": "data", "mountPath": "/landgate/bin"}]),
    ] {
        let new = with_debugger(&old, debugger(json!({ "volumeMounts": mounts })));
        let err = wrap_in(&[], NO_IMAGES, &old, &new).unwrap_err();
        assert_eq!(err.reason(), "mount", "{err}");
        assert!(check_in(&[], &old, &new).is_err());
    }
}

/// Tenant-supplied LANDGATE_* variables are removed, as in any container.
#[test]
fn user_landgate_env_is_stripped() {
    let old = wrapped();
    let new = with_debugger(
        &old,
        debugger(json!({"env": [{"name": "LANDGATE_ACTIVE", "value": "1"}]})),
    );
    let (m, stored) = wrap(&old, &new);
    assert!(m.warnings.iter().any(|w| w.contains("LANDGATE_ACTIVE")));
    let c = ephemeral(&stored, 0);
    assert_eq!(env_of(&c, "LANDGATE_ACTIVE").as_deref(), Some(""));
    assert_eq!(check_in(&[], &old, &stored), Ok(()));
}

/// The pod's writable paths (its annotations) apply to a debug container
/// as to the others; a later debug container is checked alone, the
/// earlier one left as it is.
#[test]
fn only_the_added_container_is_wrapped_with_the_pods_settings() {
    let mut old = wrapped();
    old.metadata
        .annotations
        .get_or_insert_default()
        .insert(WRITABLE_PATHS.into(), "/scratch".into());
    let (_, first) = wrap(&old, &with_debugger(&old, debugger(json!({}))));
    let mut second = debugger(json!({}));
    second["name"] = json!("debugger-2");
    let new = with_debugger(&first, second);
    let (m, stored) = wrap(&first, &new);
    for op in &m.patch.0 {
        assert!(
            op.path()
                .to_string()
                .starts_with("/spec/ephemeralContainers/1"),
            "{op:?}"
        );
    }
    let fs = policy_of(&ephemeral(&stored, 1)).fs.unwrap();
    assert!(fs.rw.iter().any(|p| p.to_string() == "/scratch"), "{fs:?}");
    assert_eq!(check_in(&[], &first, &stored), Ok(()));
}

#[test]
fn an_unwrapped_pod_is_not_read() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}
    }))
    .unwrap();
    let new = with_debugger(&pod, debugger(json!({})));
    let context = PodContext {
        namespace: "shop",
        namespace_annotations: &BTreeMap::new(),
        images: NO_IMAGES,
    };
    assert!(matches!(
        Ephemeral::read(&Settings::default(), context, &new),
        Ok(None)
    ));
}
