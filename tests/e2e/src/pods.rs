//! The pods the scenarios submit, and what "stored mutated" and "stored
//! unchanged" mean for them (the contract, `crates/policy/README.md`, "A wrapped pod").

use std::collections::BTreeSet;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::core::v1::{Container, Pod};
use landgate_policy::{POLICY_ENV, Policy};
use serde_json::{Value, json};

pub const LAUNCHER: &str = "/landgate/landgate";
pub const INIT_CONTAINER: &str = "landgate-init";
pub const VOLUME: &str = "landgate";
pub const MOUNT_PATH: &str = "/landgate";
pub const PATH_PREFIX: &str = "/landgate/bin:";
pub const STATUS_ANNOTATION: &str = "landgate.dev/status";
pub const OPT_OUT_ANNOTATION: &str = "landgate.dev/inject";
pub const INJECT_LABEL: (&str, &str) = ("landgate.dev/inject", "enabled");

/// A typical pod: a user init container and two app containers, with TCP
/// and UDP ports (only TCP ports are bindable under Landlock), a writable
/// volume and explicit commands/args.
pub fn sample_pod(name: &str) -> Pod {
    from_json(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "volumes": [{"name": "data", "emptyDir": {}}],
            "initContainers": [{
                "name": "migrate",
                "image": "busybox:1.36",
                "command": ["sh", "-c"],
                "args": ["echo migrating"],
            }],
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "command": ["nginx"],
                    "args": ["-g", "daemon off;"],
                    "ports": [
                        {"name": "http", "containerPort": 8080},
                        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                        {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
                    ],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                },
                {
                    "name": "sidecar",
                    "image": "busybox:1.36",
                    "command": ["sleep", "3600"],
                },
            ],
        },
    }))
}

/// The smallest wrappable pod: one container with a command.
pub fn simple_pod(name: &str) -> Pod {
    from_json(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "app",
            "image": "busybox:1.36",
            "command": ["sleep", "3600"],
            "ports": [{"containerPort": 8080}],
        }]},
    }))
}

/// A pod that satisfies PodSecurity `restricted` as submitted.
pub fn restricted_pod(name: &str) -> Pod {
    from_json(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "app",
                "image": "busybox:1.36",
                "command": ["sleep", "3600"],
                "ports": [{"containerPort": 8080}],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    }))
}

/// A pod whose container has no `command`: its image entrypoint is unknown
/// at admission, so it cannot be wrapped.
pub fn entrypoint_unknown_pod(name: &str, annotations: &[(&str, &str)]) -> Pod {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    from_json(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "no-command", "image": "nginx:1.27"}]},
    }))
}

pub fn from_json(value: Value) -> Pod {
    // Literal test pods: a typo here is a bug in the test itself.
    serde_json::from_value(value).expect("test pod literal is a valid Pod")
}

pub fn from_json_container(value: Value) -> Container {
    serde_json::from_value(value).expect("test container literal is a valid Container")
}

/// What the container runs: `command` then `args` (the runtime appends the
/// args to the command, so this is what is compared, whichever of the two
/// the webhook chose to put the launcher in).
pub fn argv(container: &Container) -> Vec<String> {
    container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .cloned()
        .collect()
}

fn env<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// The containers the webhook must wrap, in order: init containers, then
/// app containers.
fn workload_containers(pod: &Pod) -> Vec<&Container> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .filter(|c| c.name != INIT_CONTAINER)
        .chain(spec.containers.iter())
        .collect()
}

/// Declared TCP container ports (protocol defaults to TCP).
pub fn declared_tcp_ports(container: &Container) -> BTreeSet<u16> {
    container
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect()
}

/// `stored` is `submitted` after landgate: volume, first init container,
/// every container wrapped exactly once with its original argv, the volume
/// mounted read-only, PATH and LANDGATE_POLICY set (the policy parses with
/// the launcher's own type and binds exactly the declared TCP ports), and
/// the status annotation present.
pub fn check_wrapped(submitted: &Pod, stored: &Pod) -> anyhow::Result<()> {
    let name = stored.metadata.name.as_deref().unwrap_or("<generated>");
    check_wrapped_inner(submitted, stored).map_err(|err| {
        anyhow::anyhow!(
            "pod {name} is not wrapped as expected: {err:#}\nstored pod:\n{}",
            serde_json::to_string_pretty(stored).unwrap_or_default()
        )
    })
}

fn check_wrapped_inner(submitted: &Pod, stored: &Pod) -> anyhow::Result<()> {
    let spec = stored.spec.as_ref().context("no spec")?;
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == VOLUME)
        .with_context(|| format!("no volume {VOLUME:?}"))?;
    ensure!(
        volume.empty_dir.is_some(),
        "volume {VOLUME:?} is not an emptyDir"
    );

    let init = spec
        .init_containers
        .as_deref()
        .unwrap_or_default()
        .first()
        .context("no init containers")?;
    ensure!(
        init.name == INIT_CONTAINER,
        "first init container is {:?}, not {INIT_CONTAINER:?}",
        init.name
    );
    ensure!(
        spec.init_containers
            .iter()
            .flatten()
            .filter(|c| c.name == INIT_CONTAINER)
            .count()
            == 1,
        "{INIT_CONTAINER} is injected more than once"
    );
    ensure!(
        init.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == VOLUME && m.mount_path == MOUNT_PATH),
        "{INIT_CONTAINER} does not mount {VOLUME} at {MOUNT_PATH}"
    );

    let before = workload_containers(submitted);
    let after = workload_containers(stored);
    let names = |cs: &[&Container]| cs.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    ensure!(
        names(&before) == names(&after),
        "containers changed: submitted {:?}, stored {:?}",
        names(&before),
        names(&after)
    );
    for (original, wrapped) in before.iter().zip(&after) {
        check_container(original, wrapped)
            .with_context(|| format!("container {:?}", wrapped.name))?;
    }

    let status = stored
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .with_context(|| format!("no {STATUS_ANNOTATION} annotation"))?;
    serde_json::from_str::<Value>(status)
        .with_context(|| format!("{STATUS_ANNOTATION} is not JSON: {status:?}"))?;
    Ok(())
}

/// One container wrapped exactly once around its original argv.
pub fn check_container(original: &Container, wrapped: &Container) -> anyhow::Result<()> {
    let mut expected = vec![LAUNCHER.to_owned(), "exec".into(), "--".into()];
    expected.extend(argv(original));
    ensure!(
        argv(wrapped) == expected,
        "runs {:?}, expected {:?}",
        argv(wrapped),
        expected
    );
    let mount = wrapped
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == VOLUME)
        .with_context(|| format!("volume {VOLUME:?} not mounted"))?;
    ensure!(
        mount.mount_path == MOUNT_PATH && mount.read_only == Some(true),
        "{VOLUME:?} mounted at {:?} read_only={:?}, expected {MOUNT_PATH} read-only",
        mount.mount_path,
        mount.read_only
    );
    let path = env(wrapped, "PATH").context("no PATH env")?;
    ensure!(
        path.starts_with(PATH_PREFIX) && path.len() > PATH_PREFIX.len(),
        "PATH={path:?} does not start with {PATH_PREFIX:?} followed by the image's PATH"
    );
    let policy = env(wrapped, POLICY_ENV).with_context(|| format!("no {POLICY_ENV} env"))?;
    let policy: Policy = serde_json::from_str(policy).with_context(|| {
        format!("{POLICY_ENV} does not parse as the launcher's policy: {policy}")
    })?;
    let bind: BTreeSet<u16> = policy
        .net
        .bind
        .as_ref()
        .with_context(|| format!("{POLICY_ENV} leaves bind unrestricted"))?
        .iter()
        .map(|p| p.get())
        .collect();
    ensure!(
        bind == declared_tcp_ports(original),
        "{POLICY_ENV} binds {bind:?}, declared TCP ports are {:?}",
        declared_tcp_ports(original)
    );
    Ok(())
}

/// A status annotation that only says why landgate left the pod alone
/// (`{"version":1,"skipped":"<reason>"}`): the record the contract asks for, not
/// a change to what runs.
pub fn records_a_skip(status: &str) -> bool {
    serde_json::from_str::<Value>(status).is_ok_and(|status| {
        status.get("skipped").is_some_and(Value::is_string)
            && status
                .get("containers")
                .is_none_or(|c| c.as_array().is_some_and(Vec::is_empty))
    })
}

/// `stored` runs exactly what was submitted: nothing of landgate in it but,
/// at most, a status annotation recording why it was skipped.
pub fn check_untouched(submitted: &Pod, stored: &Pod) -> anyhow::Result<()> {
    let name = stored.metadata.name.as_deref().unwrap_or("<generated>");
    let spec = stored.spec.as_ref().context("no spec")?;
    let problem = if spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == INIT_CONTAINER)
    {
        Some(format!("has {INIT_CONTAINER}"))
    } else if spec.volumes.iter().flatten().any(|v| v.name == VOLUME) {
        Some(format!("has volume {VOLUME}"))
    } else if let Some(status) = stored
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .filter(|status| !records_a_skip(status))
    {
        Some(format!(
            "has annotation {STATUS_ANNOTATION}={status:?}, which does not record a skip"
        ))
    } else {
        let before = workload_containers(submitted);
        let after = workload_containers(stored);
        before
            .iter()
            .zip(&after)
            .find_map(|(original, stored)| {
                if argv(original) != argv(stored) {
                    Some(format!("container {} runs {:?}", stored.name, argv(stored)))
                } else if env(stored, POLICY_ENV).is_some() {
                    Some(format!("container {} has {POLICY_ENV}", stored.name))
                } else {
                    None
                }
            })
            .or_else(|| {
                (before.len() != after.len()).then(|| "containers were added or removed".into())
            })
    };
    if let Some(problem) = problem {
        bail!(
            "pod {name} should be stored unchanged but {problem}; stored pod:\n{}",
            serde_json::to_string_pretty(stored).unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a correct webhook produces for `simple_pod`, by hand.
    fn wrapped_simple_pod() -> Pod {
        from_json(json!({
            "metadata": {"name": "p", "annotations": {STATUS_ANNOTATION: "{\"version\":1}"}},
            "spec": {
                "volumes": [{"name": VOLUME, "emptyDir": {"medium": "Memory"}}],
                "initContainers": [{
                    "name": INIT_CONTAINER, "image": "launcher",
                    "volumeMounts": [{"name": VOLUME, "mountPath": MOUNT_PATH}],
                }],
                "containers": [{
                    "name": "app",
                    "image": "busybox:1.36",
                    "command": [LAUNCHER, "exec", "--", "sleep"],
                    "args": ["3600"],
                    "ports": [{"containerPort": 8080}],
                    "volumeMounts": [{"name": VOLUME, "mountPath": MOUNT_PATH, "readOnly": true}],
                    "env": [
                        {"name": "PATH", "value": "/landgate/bin:/usr/bin:/bin"},
                        {"name": POLICY_ENV, "value": "{\"v\":1,\"net\":{\"bind\":[8080]}}"},
                    ],
                }],
            },
        }))
    }

    #[test]
    fn accepts_a_correctly_wrapped_pod() {
        check_wrapped(&simple_pod("p"), &wrapped_simple_pod()).unwrap();
    }

    #[test]
    fn refuses_double_wrapping() {
        let mut pod = wrapped_simple_pod();
        let container = &mut pod.spec.as_mut().unwrap().containers[0];
        container.command = Some(
            [LAUNCHER, "exec", "--", LAUNCHER, "exec", "--", "sleep"]
                .map(String::from)
                .to_vec(),
        );
        let err = check_wrapped(&simple_pod("p"), &pod).unwrap_err();
        assert!(format!("{err:#}").contains("runs"), "{err:#}");
    }

    #[test]
    fn refuses_wrong_bind_ports() {
        let mut pod = wrapped_simple_pod();
        let container = &mut pod.spec.as_mut().unwrap().containers[0];
        container.env.as_mut().unwrap()[1].value =
            Some("{\"v\":1,\"net\":{\"bind\":[8080,5353]}}".into());
        let err = check_wrapped(&simple_pod("p"), &pod).unwrap_err();
        assert!(format!("{err:#}").contains("binds"), "{err:#}");
    }

    #[test]
    fn untouched_means_untouched() {
        check_untouched(&simple_pod("p"), &simple_pod("p")).unwrap();
        assert!(check_untouched(&simple_pod("p"), &wrapped_simple_pod()).is_err());
    }

    #[test]
    fn a_recorded_skip_is_not_a_change() {
        let mut skipped = simple_pod("p");
        skipped.metadata.annotations = Some(
            [(
                STATUS_ANNOTATION.to_owned(),
                r#"{"version":1,"skipped":"opted out"}"#.to_owned(),
            )]
            .into(),
        );
        check_untouched(&simple_pod("p"), &skipped).unwrap();
        assert!(!records_a_skip(r#"{"version":1,"containers":["app"]}"#));
        assert!(!records_a_skip("not json"));
    }

    #[test]
    fn udp_ports_are_not_bind_ports() {
        let pod = sample_pod("s");
        let web = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(declared_tcp_ports(web), BTreeSet::from([8080, 9090]));
    }
}
