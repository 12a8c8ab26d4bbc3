//! The policies the launcher rows measure, measured rather than written by
//! hand: a realistic pod goes through the engine's `mutate_pod`, the one the
//! webhook calls, and the `LANDGATE_POLICY` value it writes on the container
//! is what landgate is given. The floor's arguments and each peer's rules are
//! derived from that same value, so no side can drift from what the webhook
//! really writes.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use landgate_engine::settings::Settings;
use landgate_engine::{PodContext, mutate_pod};
use landgate_policy::{POLICY_ENV, Policy};

/// The container the pods below declare.
const CONTAINER: &str = "web";

/// A realistic `baseline` pod: writable root filesystem, one container
/// listening on three TCP ports. `connect_ports`, when given, is the
/// `landgate.dev/connect-ports` annotation's value; `volumes`, writable
/// emptyDir mounts (each one more `fs.rw` path).
fn pod(connect_ports: Option<&str>, volumes: &[&str]) -> Result<Pod> {
    let mut annotations = serde_json::json!({"landgate.dev/profile": "baseline"});
    if let Some(ports) = connect_ports {
        annotations["landgate.dev/connect-ports"] = ports.into();
    }
    let mounts: Vec<_> = volumes
        .iter()
        .enumerate()
        .map(|(i, path)| serde_json::json!({"name": format!("data{i}"), "mountPath": path}))
        .collect();
    let volumes: Vec<_> = (0..volumes.len())
        .map(|i| serde_json::json!({"name": format!("data{i}"), "emptyDir": {}}))
        .collect();
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bench", "namespace": "bench", "annotations": annotations},
        "spec": {
            "containers": [{
                "name": CONTAINER, "image": "registry.example/web:1",
                "command": ["/usr/bin/web"],
                "securityContext": {"readOnlyRootFilesystem": false},
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "https", "containerPort": 8443, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                ],
                "volumeMounts": mounts
            }],
            "volumes": volumes
        }
    });
    Ok(serde_json::from_value(pod)?)
}

/// The `LANDGATE_POLICY` value the engine writes on the container of `pod`,
/// read from the patched pod's env, as the kubelet would pass it.
fn written_policy(pod: &Pod) -> Result<String> {
    let namespace_annotations = BTreeMap::new();
    let context = PodContext {
        namespace: "bench",
        namespace_annotations: &namespace_annotations,
        images: landgate_engine::mutate::NO_IMAGES,
    };
    let mutation = mutate_pod(&Settings::default(), context, pod)?;
    let patched = landgate_engine::patch::apply(pod, &mutation.patch)
        .map_err(|e| anyhow::anyhow!("the engine's patch does not apply: {e}"))?;
    let container = patched
        .spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .find(|c| c.name == CONTAINER)
        .context("the patched pod lost its container")?;
    let value = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == POLICY_ENV)
        .and_then(|e| e.value.clone())
        .with_context(|| format!("the engine wrote no {POLICY_ENV} ({:?})", mutation.outcome))?;
    // The kubelet turns `$$` back into `$` (the engine escapes each `$`).
    Ok(value.replace("$$", "$"))
}

/// One measured policy: the JSON the launcher is given and its parse.
pub struct Measured {
    pub json: String,
    pub policy: Policy,
    /// What the pod has, for the table.
    pub pod: String,
    /// The pod itself, for the test.
    #[cfg_attr(not(test), allow(dead_code))]
    source: Pod,
}

impl Measured {
    fn of(pod_text: String, pod: Pod) -> Result<Self> {
        let json = written_policy(&pod)?;
        let policy = Policy::from_json(&json).context("the engine's policy does not parse")?;
        Ok(Self {
            json,
            policy,
            pod: pod_text,
            source: pod,
        })
    }

    /// The exec rows' policy: the 3-port baseline pod.
    pub fn baseline() -> Result<Self> {
        Self::of(
            "baseline pod, writable root, TCP containerPorts 8080, 8443, 9090".to_owned(),
            pod(None, &[])?,
        )
    }

    /// The in-process row's policy: the same pod with connect ports, and
    /// writable volumes until the policy has 20 rules.
    pub fn twenty_rules() -> Result<Self> {
        let connect = "53,443,5432";
        let candidates = ["/data", "/cache", "/uploads", "/spool", "/scratch"];
        for n in 0..=candidates.len() {
            let volumes = &candidates[..n];
            let mut text = format!(
                "baseline pod, writable root, TCP containerPorts 8080, 8443, 9090, `landgate.dev/connect-ports: {connect}`"
            );
            if !volumes.is_empty() {
                text.push_str(&format!(", emptyDir mounts {}", volumes.join(", ")));
            }
            let measured = Self::of(text, pod(Some(connect), volumes)?)?;
            if measured.rules() >= 20 {
                return Ok(measured);
            }
        }
        bail!("no pod of the candidates reaches 20 rules")
    }

    pub fn rx(&self) -> Vec<String> {
        self.policy
            .fs
            .iter()
            .flat_map(|fs| &fs.rx)
            .map(ToString::to_string)
            .collect()
    }

    pub fn rw(&self) -> Vec<String> {
        self.policy
            .fs
            .iter()
            .flat_map(|fs| &fs.rw)
            .map(ToString::to_string)
            .collect()
    }

    /// Bind ports as the policy lists them (the launcher adds the ephemeral
    /// 0 unless `bind_ephemeral` is false; the floor does the same with
    /// `-b`).
    pub fn bind(&self) -> Vec<u16> {
        ports(self.policy.net.bind.as_ref())
    }

    pub fn connect(&self) -> Vec<u16> {
        ports(self.policy.net.connect.as_ref())
    }

    /// Landlock rules the launcher adds: one per path, one per port
    /// (bind's ephemeral 0 included).
    pub fn rules(&self) -> usize {
        let paths = self.rx().len() + self.rw().len();
        let bind = self
            .policy
            .net
            .effective_bind()
            .map_or(0, |p| p.iter().count());
        let connect = self
            .policy
            .net
            .effective_connect()
            .map_or(0, |p| p.iter().count());
        paths + bind + connect
    }

    /// "13 paths, 7 ports" etc.
    pub fn shape(&self) -> String {
        let paths = self.rx().len() + self.rw().len();
        format!(
            "{} rules: {paths} paths, {} ports",
            self.rules(),
            self.rules() - paths
        )
    }
}

fn ports(set: Option<&landgate_policy::PortSet>) -> Vec<u16> {
    set.iter().flat_map(|s| s.iter()).map(|p| p.get()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy the bench measures is the one the engine decides for the
    /// container (its `policies`, what the status annotation hashes), read
    /// back from the env var it writes: editing the engine or this module's
    /// reading of it fails here.
    #[test]
    fn the_measured_policies_are_the_ones_the_engine_writes() {
        let engine = |pod: &Pod| {
            let namespace_annotations = BTreeMap::new();
            let context = PodContext {
                namespace: "bench",
                namespace_annotations: &namespace_annotations,
                images: landgate_engine::mutate::NO_IMAGES,
            };
            mutate_pod(&Settings::default(), context, pod)
                .unwrap()
                .policies[CONTAINER]
                .clone()
        };
        let baseline = Measured::baseline().unwrap();
        let twenty = Measured::twenty_rules().unwrap();
        for measured in [&baseline, &twenty] {
            println!(
                "{}: {}\n  {}",
                measured.pod,
                measured.shape(),
                measured.json
            );
            assert_eq!(measured.policy, engine(&measured.source));
            assert_eq!(measured.json, engine(&measured.source).to_json());
        }
        assert_eq!(baseline.bind(), [8080, 8443, 9090]);
        assert_eq!(baseline.connect(), [] as [u16; 0]);
        assert!(twenty.rules() >= 20, "{}", twenty.shape());
        assert_eq!(twenty.connect(), [53, 443, 5432]);
    }
}
