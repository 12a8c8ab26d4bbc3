//! landgate on a real node (issue 13): pods admitted by landgate start
//! through `landgate-init` and the launcher, and the kernel refuses what the
//! pod did not declare.
//!
//! One cluster with one node (`cluster.sh up --node`: kubelet, containerd,
//! kube-scheduler, a TLS registry with the images built from the project's
//! Dockerfile, landgate installed from `manifests/`) serves every test of
//! this binary; each test works in its own namespaces. Needs root. Run with
//! `just e2e-node`. On failure the state directory with every component's
//! log is kept and its path printed.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use std::collections::BTreeSet;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use landgate_e2e::eventually;
use landgate_e2e::node::{
    NodeCluster, create_and_wait, delete_and_wait, is_ready, is_running, log_containing, pod_ip,
};
use landgate_e2e::pods::INJECT_LABEL;
use serde_json::json;

struct Env {
    node: NodeCluster,
    client: kube::Client,
    http: reqwest::Client,
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime for the node tests")
});

static ENV: OnceLock<Result<Env, String>> = OnceLock::new();

fn env() -> &'static Env {
    let env = ENV.get_or_init(|| {
        let started = Instant::now();
        let env = RUNTIME
            .block_on(set_up())
            .map_err(|err| landgate_e2e::describe(&err));
        eprintln!("node: set-up took {:.1}s", started.elapsed().as_secs_f64());
        env
    });
    match env {
        Ok(env) => env,
        Err(message) => panic!("node set-up failed: {message}"),
    }
}

async fn set_up() -> anyhow::Result<Env> {
    landgate_e2e::install_crypto_provider();
    ensure!(
        is_root(),
        "the node tests need root (network namespace, kubelet, containerd): run them as root"
    );
    let node = NodeCluster::up().await?;
    eprintln!(
        "node: cluster at {}, registry {}, pods in {}; state and logs in {}",
        node.cluster.apiserver_url,
        node.registry,
        node.pod_cidr,
        node.cluster.dir.display()
    );
    let dir = node.cluster.dir.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = std::fs::write(dir.join("failed"), b"a test failed\n");
        default_hook(info);
        eprintln!("node: logs kept in {}", dir.join("logs").display());
    }));
    let client = node.cluster.client().await?;
    // The pods' addresses are on the node's bridge, routed from the host:
    // never through a proxy from the environment.
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    Ok(Env { node, client, http })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs one scenario on the shared runtime; an error keeps the logs and
/// fails the test with the state directory in the message.
fn run<F, Fut>(scenario: F)
where
    F: FnOnce(&'static Env) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let env = env();
    let started = Instant::now();
    let result = RUNTIME.block_on(scenario(env));
    eprintln!(
        "node: scenario took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if let Err(err) = result {
        env.node.cluster.mark_failed();
        panic!(
            "{}\n(state and logs kept in {})",
            landgate_e2e::describe(&err),
            env.node.cluster.dir.display()
        );
    }
}

impl Env {
    async fn namespace(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<Api<Pod>> {
        self.node
            .cluster
            .namespace(&self.client, name, labels)
            .await?;
        Ok(Api::namespaced(self.client.clone(), name))
    }

    async fn get(&self, url: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        ensure!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        Ok(response.text().await?)
    }

    /// `kubectl exec` through the API server (and landgate's CONNECT
    /// webhook) to the kubelet: exit code, stdout, stderr.
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> anyhow::Result<(i32, String, String)> {
        let mut args = vec!["-n", namespace, "exec", pod, "-c", container, "--"];
        args.extend_from_slice(command);
        let output = self.node.cluster.kubectl(&args).await?;
        Ok((
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    /// Deletes the pods (each with the Api of its namespace), then waits
    /// until the node holds nothing of them: no mount and no process more
    /// than before they were created, no cgroup of theirs.
    async fn delete_leaving_nothing(
        &self,
        pods: &[(&Api<Pod>, &Pod)],
        before: &Snapshot,
    ) -> anyhow::Result<()> {
        for (api, pod) in pods {
            let name = pod
                .metadata
                .name
                .as_deref()
                .context("a pod without a name")?;
            delete_and_wait(api, &[name]).await?;
        }
        let pods: Vec<&Pod> = pods.iter().map(|(_, pod)| *pod).collect();
        self.nothing_left(&pods, before).await
    }

    /// Waits until the node holds nothing of `pods`, which are gone.
    async fn nothing_left(&self, pods: &[&Pod], before: &Snapshot) -> anyhow::Result<()> {
        let names: Vec<&str> = pods
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let uids: Vec<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        eventually(
            &format!("the node to hold nothing of pods {names:?}"),
            Duration::from_secs(60),
            || async {
                let now = Snapshot::take(&self.node)?;
                let mounts: Vec<&String> = now.mounts.difference(&before.mounts).collect();
                let processes: Vec<&u32> = now.processes.difference(&before.processes).collect();
                let cgroups: Vec<_> = uids
                    .iter()
                    .flat_map(|uid| self.node.pod_cgroups(uid))
                    .collect();
                if mounts.is_empty() && processes.is_empty() && cgroups.is_empty() {
                    Ok(Some(()))
                } else {
                    anyhow::bail!(
                        "left: mounts {mounts:?}, processes {processes:?}, cgroups {cgroups:?}"
                    )
                }
            },
        )
        .await
    }
}

/// What the node holds, to compare before and after a scenario.
struct Snapshot {
    mounts: BTreeSet<String>,
    processes: BTreeSet<u32>,
}

impl Snapshot {
    fn take(node: &NodeCluster) -> anyhow::Result<Self> {
        Ok(Self {
            mounts: node.mounts()?,
            processes: node.pod_processes()?,
        })
    }
}

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("a valid Pod")
}

/// The launcher's line, first in the app container's log (README, "Reading
/// enforcement status"); this kernel has every Landlock right landgate uses.
const FULLY_ENFORCED: &str = "landgate: FullyEnforced";

fn first_line(log: &str) -> &str {
    log.lines().next().unwrap_or_default()
}

/// The launcher's lines come first: warnings about paths of the profile the
/// image lacks (a `FROM scratch` image has no /home, /var/lib, ...), then
/// the FullyEnforced line, then the program's own output.
fn launcher_first(log: &str) -> anyhow::Result<()> {
    for line in log.lines() {
        if line.starts_with(FULLY_ENFORCED) {
            return Ok(());
        }
        ensure!(
            line.starts_with("landgate: warning: "),
            "{line:?} comes before the launcher's {FULLY_ENFORCED:?} line:\n{log}"
        );
    }
    anyhow::bail!("no {FULLY_ENFORCED:?} line in the log:\n{log}")
}

fn init_completed(pod: &Pod) -> anyhow::Result<()> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .context("no init container statuses")?;
    let init = statuses
        .iter()
        .find(|s| s.name == "landgate-init")
        .context("no landgate-init container")?;
    let terminated = init
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .context("landgate-init has not terminated")?;
    ensure!(
        terminated.exit_code == 0,
        "landgate-init exited {} ({:?})",
        terminated.exit_code,
        terminated.message
    );
    Ok(())
}

fn has_init(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.name == "landgate-init"))
}

// === scenarios ===

/// What the busybox probe prints: a write to its emptyDir, a write outside
/// the writable paths, a bind to an undeclared port (nc is killed by
/// `timeout` when the bind succeeds: exit 143), then it serves /data on the
/// declared port. All on stderr, like the launcher's line: containerd
/// timestamps each stream as it reads it, so a stdout line written just
/// after the launcher's stderr line can come first in the log (seen here).
const PROBE_SCRIPT: &str = r#"
exec 1>&2
echo hello-from-landgate >/data/index.html && echo "write /data: ok"
echo x >/etc/landgate-probe && echo "write /etc: ok"
timeout 1 nc -l -p 9090; echo "bind 9090: exit $?"
echo "probes done"
exec httpd -f -p 8080 -h /data
"#;

fn probe_pod(node: &NodeCluster, name: &str) -> Pod {
    pod(json!({
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app",
                "image": node.image("busybox"),
                "command": ["/bin/sh", "-c", PROBE_SCRIPT],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }))
}

#[test]
fn sandboxed_pod_binds_only_its_declared_port_and_writes_only_its_volumes() {
    run(|env| async move {
        let before = Snapshot::take(&env.node)?;
        let sandboxed = env.namespace("node-sandboxed", &[INJECT_LABEL]).await?;
        let control = env.namespace("node-control", &[]).await?;
        let timeout = Duration::from_secs(90);

        let started = Instant::now();
        let pod = create_and_wait(
            &sandboxed,
            &probe_pod(&env.node, "probe"),
            "running",
            timeout,
            is_running,
        )
        .await?;
        eprintln!(
            "node: sandboxed pod running in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        ensure!(has_init(&pod), "the pod was not wrapped: no landgate-init");
        init_completed(&pod)?;
        let log = log_containing(&sandboxed, "probe", "app", "probes done").await?;
        ensure!(
            first_line(&log).starts_with(FULLY_ENFORCED),
            "the log does not start with the launcher's line:\n{log}"
        );
        ensure!(
            log.contains("write /data: ok"),
            "write to the emptyDir failed:\n{log}"
        );
        ensure!(
            log.contains("can't create /etc/landgate-probe: Permission denied")
                && !log.contains("write /etc: ok"),
            "a write outside the writable paths was not refused with EACCES:\n{log}"
        );
        ensure!(
            log.contains("nc: bind: Permission denied") && log.contains("bind 9090: exit 1"),
            "the bind to undeclared port 9090 was not refused with EACCES:\n{log}"
        );
        let ip = pod_ip(&pod)?;
        let body = eventually(
            "the sandboxed pod's listener on 8080",
            Duration::from_secs(20),
            || async { Ok(env.get(&format!("http://{ip}:8080/index.html")).await.ok()) },
        )
        .await?;
        ensure!(
            body.contains("hello-from-landgate"),
            "8080 answered {body:?}"
        );

        // The control case: the same pod where landgate is not asked.
        let pod = create_and_wait(
            &control,
            &probe_pod(&env.node, "probe"),
            "running",
            timeout,
            is_running,
        )
        .await?;
        ensure!(
            !has_init(&pod),
            "a pod in an unlabelled namespace was wrapped"
        );
        let control_log = log_containing(&control, "probe", "app", "probes done").await?;
        ensure!(
            !control_log.contains("landgate:"),
            "the launcher ran in the control pod:\n{control_log}"
        );
        ensure!(
            control_log.contains("write /etc: ok") && control_log.contains("bind 9090: exit 143"),
            "the control pod could not write /etc or bind 9090 (so the refusals above would prove nothing):\n{control_log}"
        );
        let control_ip = pod_ip(&pod)?;
        let body = eventually(
            "the control pod's listener on 8080",
            Duration::from_secs(20),
            || async {
                Ok(env
                    .get(&format!("http://{control_ip}:8080/index.html"))
                    .await
                    .ok())
            },
        )
        .await?;
        ensure!(
            body.contains("hello-from-landgate"),
            "8080 answered {body:?}"
        );
        // And from another pod, across the node's bridge.
        let (code, stdout, stderr) = env
            .exec(
                "node-control",
                "probe",
                "app",
                &["wget", "-qO-", &format!("http://{ip}:8080/index.html")],
            )
            .await?;
        ensure!(
            code == 0 && stdout.contains("hello-from-landgate"),
            "the sandboxed pod's 8080 did not answer another pod (exit {code}): {stdout}{stderr}"
        );

        let sandboxed_pod = sandboxed.get("probe").await?;
        env.delete_leaving_nothing(&[(&sandboxed, &sandboxed_pod), (&control, &pod)], &before)
            .await?;
        Ok(())
    });
}

/// golisten binds 8080 and 9090 (Go: MPTCP sockets by default), tries
/// io_uring, then serves.
fn golisten_pod(node: &NodeCluster, name: &str) -> Pod {
    pod(json!({
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "app",
                "image": node.image("golisten"),
                "command": ["/golisten"],
                "args": ["8080", "9090"],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "runAsNonRoot": true,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    }))
}

#[test]
fn go_program_as_non_root_under_restricted_cannot_bind_an_undeclared_port() {
    run(|env| async move {
        let before = Snapshot::take(&env.node)?;
        let restricted = ("pod-security.kubernetes.io/enforce", "restricted");
        let sandboxed = env
            .namespace("node-go", &[INJECT_LABEL, restricted])
            .await?;
        let control = env.namespace("node-go-control", &[restricted]).await?;
        let timeout = Duration::from_secs(90);

        let pod = create_and_wait(
            &sandboxed,
            &golisten_pod(&env.node, "golisten"),
            "Ready",
            timeout,
            is_ready,
        )
        .await?;
        ensure!(has_init(&pod), "the pod was not wrapped: no landgate-init");
        init_completed(&pod)?;
        let log = log_containing(&sandboxed, "golisten", "app", "io_uring_setup").await?;
        launcher_first(&log)?;
        // Go asked for MPTCP (its default); the launcher's filter refuses
        // MPTCP sockets so that Go falls back to TCP, which Landlock sees.
        ensure!(
            log.contains("listen :8080 ok mptcp=true"),
            "8080 was not bound by an MPTCP-by-default Go listener:\n{log}"
        );
        ensure!(
            log.contains(
                "listen :9090 error: listen tcp :9090: bind: permission denied (errno 13)"
            ),
            "the Go program's bind to undeclared port 9090 was not refused with EACCES:\n{log}"
        );
        // TCP is restricted, so the launcher's seccomp filter answers
        // io_uring_setup with ENOSYS (io_uring could bind around Landlock).
        ensure!(
            log.contains("io_uring_setup error: function not implemented (errno 38)"),
            "io_uring was not refused:\n{log}"
        );
        let ip = pod_ip(&pod)?;
        let body = env.get(&format!("http://{ip}:8080/")).await?;
        ensure!(body.contains("golisten"), "8080 answered {body:?}");

        let control_pod = create_and_wait(
            &control,
            &golisten_pod(&env.node, "golisten"),
            "Ready",
            timeout,
            is_ready,
        )
        .await?;
        let control_log = log_containing(&control, "golisten", "app", "io_uring_setup").await?;
        ensure!(
            control_log.contains("listen :9090 ok mptcp=true"),
            "the control pod could not bind 9090:\n{control_log}"
        );
        eprintln!("node: control Go program:\n{control_log}");

        env.delete_leaving_nothing(&[(&sandboxed, &pod), (&control, &control_pod)], &before)
            .await?;
        Ok(())
    });
}

/// Two containers: `inside`, whose readiness probe writes /tmp (writable
/// under baseline) and whose preStop hook tries /etc and reports to a
/// hostPath the test reads; `outside`, whose readiness probe writes /etc.
fn exec_pod(node: &NodeCluster, name: &str, report_dir: &str) -> Pod {
    let idle = "trap 'exit 0' TERM; while true; do sleep 1; done";
    pod(json!({
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "inside",
                    "image": node.image("busybox"),
                    "command": ["/bin/sh", "-c", idle],
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data"},
                        {"name": "report", "mountPath": "/report"},
                    ],
                    "readinessProbe": {
                        "exec": {"command": ["sh", "-c", "echo ok >/tmp/ready"]},
                        "periodSeconds": 1,
                    },
                    "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c",
                        "exec 2>/report/prestop.log; echo x >/etc/prestop; echo \"etc: exit $?\" >&2"]}}},
                },
                {
                    "name": "outside",
                    "image": node.image("busybox"),
                    "command": ["/bin/sh", "-c", idle],
                    "readinessProbe": {
                        "exec": {"command": ["sh", "-c", "echo x >/etc/ready"]},
                        "periodSeconds": 1,
                    },
                },
            ],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "report", "hostPath": {"path": report_dir, "type": "DirectoryOrCreate"}},
            ],
        },
    }))
}

#[test]
fn kubectl_exec_probes_and_hooks_run_sandboxed() {
    run(|env| async move {
        let before = Snapshot::take(&env.node)?;
        let namespace = "node-exec";
        let api = env.namespace(namespace, &[INJECT_LABEL]).await?;
        let report_dir = env.node.cluster.dir.join("node/prestop-report");
        let report = report_dir.display().to_string();
        let pod = create_and_wait(
            &api,
            &exec_pod(&env.node, "exec", &report),
            "running with `inside` ready",
            Duration::from_secs(90),
            |pod| {
                pod.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.name == "inside" && c.ready))
            },
        )
        .await?;
        ensure!(has_init(&pod), "the pod was not wrapped: no landgate-init");

        // The probe that stays inside passed (above); the one that writes
        // /etc keeps failing, with the kernel's refusal as its output.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pod = api.get("exec").await?;
        let outside = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.iter().find(|c| c.name == "outside"))
            .context("no status for container outside")?;
        ensure!(
            !outside.ready,
            "the probe writing /etc passed: it ran outside the sandbox"
        );
        let events = env
            .node
            .cluster
            .kubectl(&[
                "-n",
                namespace,
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=exec,reason=Unhealthy",
                "-o",
                "jsonpath={.items[*].message}",
            ])
            .await?;
        let events = String::from_utf8_lossy(&events.stdout).into_owned();
        ensure!(
            events.contains("can't create /etc/ready: Permission denied"),
            "no probe failure with EACCES among the pod's events: {events:?}"
        );

        for shell in ["sh", "/bin/sh"] {
            let (code, _, stderr) = env
                .exec(
                    namespace,
                    "exec",
                    "inside",
                    &[shell, "-c", "echo x >/etc/exec-probe"],
                )
                .await?;
            ensure!(
                code != 0 && stderr.contains("can't create /etc/exec-probe: Permission denied"),
                "kubectl exec {shell} wrote outside the writable paths (exit {code}): {stderr}"
            );
            let (code, _, stderr) = env
                .exec(
                    namespace,
                    "exec",
                    "inside",
                    &[shell, "-c", "timeout 1 nc -l -p 9090"],
                )
                .await?;
            ensure!(
                code == 1 && stderr.contains("nc: bind: Permission denied"),
                "kubectl exec {shell} bound an undeclared port (exit {code}): {stderr}"
            );
        }
        let (code, stdout, stderr) = env
            .exec(
                namespace,
                "exec",
                "inside",
                &["sh", "-c", "echo ok >/data/exec && cat /data/exec"],
            )
            .await?;
        ensure!(
            code == 0 && stdout.trim() == "ok",
            "kubectl exec could not write the emptyDir (exit {code}): {stdout}{stderr}"
        );

        // kubectl debug: the debug container runs wrapped (its first line
        // the launcher's), and the kernel refuses it, and an exec into it,
        // what the pod did not declare (an ephemeral container declares no
        // port at all).
        let busybox = env.node.image("busybox");
        let output = env
            .node
            .cluster
            .kubectl(&[
                "-n", namespace, "debug", "exec", "--image", &busybox, "-c", "debugger", "--",
                "sh", "-c",
                "echo x >/etc/debug; echo \"etc: exit $?\" >&2; nc -l -p 9091; echo \"bind: exit $?\" >&2; trap 'exit 0' TERM; while true; do sleep 1; done",
            ])
            .await?;
        ensure!(
            output.status.success(),
            "kubectl debug failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let log = eventually(
            "the debug container to report its refusals",
            Duration::from_secs(60),
            || async {
                let output = env
                    .node
                    .cluster
                    .kubectl(&["-n", namespace, "logs", "exec", "-c", "debugger"])
                    .await?;
                let log = String::from_utf8_lossy(&output.stdout).into_owned()
                    + &String::from_utf8_lossy(&output.stderr);
                Ok(log.contains("bind: exit").then_some(log))
            },
        )
        .await?;
        launcher_first(&log)?;
        ensure!(
            log.contains("can't create /etc/debug: Permission denied")
                && log.contains("etc: exit 1")
                && log.contains("nc: bind: Permission denied"),
            "the debug container was not sandboxed: {log}"
        );
        let (code, _, stderr) = env
            .exec(
                namespace,
                "exec",
                "debugger",
                &["/bin/sh", "-c", "echo x >/etc/exec-debug"],
            )
            .await?;
        ensure!(
            code != 0 && stderr.contains("can't create /etc/exec-debug: Permission denied"),
            "kubectl exec into the debug container wrote outside the writable paths (exit {code}): {stderr}"
        );

        env.delete_leaving_nothing(&[(&api, &pod)], &before).await?;
        let prestop = std::fs::read_to_string(report_dir.join("prestop.log"))
            .context("the preStop hook left no report")?;
        ensure!(
            prestop.contains("can't create /etc/prestop: Permission denied")
                && prestop.contains("etc: exit 1"),
            "the preStop hook wrote outside the writable paths: {prestop}"
        );
        Ok(())
    });
}

#[test]
fn deployment_without_command_runs_its_image_entrypoint_sandboxed() {
    run(|env| async move {
        let before = Snapshot::take(&env.node)?;
        let namespace = "node-deployment";
        let api = env.namespace(namespace, &[INJECT_LABEL]).await?;
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "golisten"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "golisten"}},
                "template": {
                    "metadata": {"labels": {"app": "golisten"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{
                            "name": "app",
                            "image": env.node.image("golisten"),
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        }],
                    },
                },
            },
        }))?;
        Api::<Deployment>::namespaced(env.client.clone(), namespace)
            .create(&PostParams::default(), &deployment)
            .await
            .context("creating the Deployment")?;
        let pod = eventually(
            "the Deployment's pod to run",
            Duration::from_secs(90),
            || async {
                let pods = api
                    .list(&ListParams::default().labels("app=golisten"))
                    .await?;
                Ok(pods.items.into_iter().find(is_running))
            },
        )
        .await?;
        let name = pod.metadata.name.clone().unwrap();
        ensure!(has_init(&pod), "the Deployment's pod was not wrapped");
        let command = pod.spec.as_ref().unwrap().containers[0]
            .command
            .clone()
            .unwrap_or_default();
        ensure!(
            command.first().map(String::as_str) == Some("/landgate/landgate")
                && command.iter().any(|c| c == "/golisten"),
            "the image's entrypoint was not resolved into the launcher's command: {command:?}"
        );
        let log = log_containing(&api, &name, "app", "io_uring_setup").await?;
        launcher_first(&log)?;
        ensure!(
            log.contains("listen :8080 ok")
                && log.contains(
                    "listen :9090 error: listen tcp :9090: bind: permission denied (errno 13)"
                ),
            "the image's own CMD (8080 9090) did not run sandboxed:\n{log}"
        );
        // Scaled to zero rather than deleted: no garbage collector runs
        // here to delete a deleted Deployment's pods.
        Api::<Deployment>::namespaced(env.client.clone(), namespace)
            .patch(
                "golisten",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 0}})),
            )
            .await?;
        eventually(
            "the Deployment's pod to be gone",
            Duration::from_secs(60),
            || async { Ok(api.get_opt(&name).await?.is_none().then_some(())) },
        )
        .await?;
        env.nothing_left(&[&pod], &before).await?;
        Ok(())
    });
}
