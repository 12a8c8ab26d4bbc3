//! The real node: `cluster.sh up --node` (see `node.sh`) gives a kubelet,
//! containerd, kube-scheduler, a TLS registry holding the images built from
//! the project's Dockerfile and the test workloads, and landgate installed
//! from `manifests/`. This module reads what it wrote and looks at the node
//! from the host: pod logs, the pods' addresses, what is mounted and what
//! runs in the pods' cgroups.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams};

use crate::cluster::ControlPlane;
use crate::eventually;

/// A control plane with a node, up until the test binary exits.
#[derive(Debug)]
pub struct NodeCluster {
    pub cluster: ControlPlane,
    /// `HOST:PORT` of the node's registry, as image references name it.
    pub registry: String,
    /// The pods' subnet, routed from the host to the node.
    pub pod_cidr: String,
    /// The node's cgroup root (under every cgroup v1 hierarchy).
    pub cgroup_root: String,
}

impl NodeCluster {
    /// `cluster.sh up --node`: the first run builds the kubelet, the images
    /// and the release binaries (cached afterwards).
    pub async fn up() -> anyhow::Result<Self> {
        let cluster = ControlPlane::up_with(&["--node"]).await?;
        let get = |key: &str| {
            cluster
                .env
                .get(key)
                .cloned()
                .with_context(|| format!("{} has no {key}", cluster.dir.join("env").display()))
        };
        Ok(Self {
            registry: get("LANDGATE_REGISTRY")?,
            pod_cidr: get("LANDGATE_POD_CIDR")?,
            cgroup_root: get("LANDGATE_CGROUP_ROOT")?,
            cluster,
        })
    }

    /// A test image node.sh pushed: `busybox`, `golisten`, `pause`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/landgate-e2e/{name}:e2e", self.registry)
    }

    /// Every mount point under the cluster's state directory (containers'
    /// root filesystems, pods' volumes, sandboxes' shm and netns files).
    pub fn mounts(&self) -> anyhow::Result<BTreeSet<String>> {
        let prefix = format!("{}/", self.cluster.dir.display());
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .context("reading /proc/self/mountinfo")?;
        Ok(text
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter(|point| point.starts_with(&prefix))
            .map(str::to_owned)
            .collect())
    }

    /// The PIDs of every process in the node's pods (the pids hierarchy
    /// holds every container and sandbox under the kubelet's cgroup root).
    pub fn pod_processes(&self) -> anyhow::Result<BTreeSet<u32>> {
        let mut pids = BTreeSet::new();
        self.walk_cgroups(|path, is_dir| {
            if !is_dir && path.file_name().is_some_and(|n| n == "cgroup.procs") {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        });
        Ok(pids)
    }

    /// The cgroup directories of one pod (`pod<uid>` under the QoS classes).
    pub fn pod_cgroups(&self, uid: &str) -> Vec<PathBuf> {
        let name = format!("pod{uid}");
        let mut found = Vec::new();
        self.walk_cgroups(|path, is_dir| {
            if is_dir
                && path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy() == name)
            {
                found.push(path.to_owned());
            }
        });
        found
    }

    /// Every entry beneath the kubelet's cgroup root in the pids hierarchy
    /// (a directory that vanishes meanwhile is skipped: pods come and go).
    fn walk_cgroups(&self, mut visit: impl FnMut(&std::path::Path, bool)) {
        let mut dirs = vec![PathBuf::from("/sys/fs/cgroup/pids").join(&self.cgroup_root)];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let is_dir = path.is_dir();
                visit(&path, is_dir);
                if is_dir {
                    dirs.push(path);
                }
            }
        }
    }
}

/// Creates `pod` and waits until `done` says yes about it (or it failed to
/// start: an image pull error, a container that cannot be created).
pub async fn create_and_wait(
    api: &Api<Pod>,
    pod: &Pod,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Pod) -> bool,
) -> anyhow::Result<Pod> {
    let name = pod.metadata.name.clone().context("the pod has no name")?;
    api.create(&PostParams::default(), pod)
        .await
        .with_context(|| format!("creating pod {name}"))?;
    eventually(&format!("pod {name} {what}"), timeout, || async {
        let pod = api.get(&name).await?;
        if done(&pod) {
            return Ok(Some(pod));
        }
        if let Some(problem) = start_failure(&pod) {
            bail!("pod {name} cannot start: {problem}");
        }
        Ok(None)
    })
    .await
}

/// A waiting reason that will not fix itself.
fn start_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in all {
        let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(waiting) = waiting {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if matches!(
                reason,
                "ErrImagePull"
                    | "ImagePullBackOff"
                    | "CreateContainerError"
                    | "InvalidImageName"
                    | "CreateContainerConfigError"
                    | "RunContainerError"
            ) {
                return Some(format!(
                    "container {}: {reason}: {}",
                    container.name,
                    waiting.message.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    None
}

pub fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// The log of one container, once it has printed `until` (containers print
/// their findings first, then serve).
pub async fn log_containing(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    until: &str,
) -> anyhow::Result<String> {
    let params = LogParams {
        container: Some(container.to_owned()),
        ..Default::default()
    };
    eventually(
        &format!("{until:?} in the log of {pod}/{container}"),
        Duration::from_secs(30),
        || async {
            let log = api.logs(pod, &params).await?;
            Ok(log.contains(until).then_some(log))
        },
    )
    .await
}

/// Deletes the pods and waits until the API server no longer has them
/// (the kubelet has stopped their containers and confirmed).
pub async fn delete_and_wait(api: &Api<Pod>, names: &[&str]) -> anyhow::Result<()> {
    for name in names {
        api.delete(name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting pod {name}"))?;
    }
    for name in names {
        eventually(
            &format!("pod {name} to be gone"),
            Duration::from_secs(60),
            || async { Ok(api.get_opt(name).await?.is_none().then_some(())) },
        )
        .await?;
    }
    Ok(())
}

/// The pod's IP address (bridge network), once it has one.
pub fn pod_ip(pod: &Pod) -> anyhow::Result<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .with_context(|| {
            format!(
                "pod {} has no IP address",
                pod.metadata.name.as_deref().unwrap_or("?")
            )
        })
}
