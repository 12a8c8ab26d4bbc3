//! The control plane: `cluster.sh up` in a state directory owned by this
//! process. `cluster.sh` starts a reaper that runs `cluster.sh down` when this
//! process exits (however it exits), so nothing outlives the test binary;
//! processes the tests start themselves are registered in the same
//! `pids/` directory and torn down with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{eventually, repo_root};

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    /// State directory: pki, etcd data, logs/, pids/, kubeconfig.
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// kubectl built from the same Kubernetes release.
    pub kubectl: PathBuf,
    pub apiserver_url: String,
    /// Everything `cluster.sh up` wrote to `env` (the node adds its own keys).
    pub env: BTreeMap<String, String>,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager with
    /// `tests/e2e/cluster.sh up` in a new state directory.
    pub async fn up() -> anyhow::Result<Self> {
        Self::up_with(&[]).await
    }

    /// `cluster.sh up ARGS...` (`--node` for a real node, see `node.sh`).
    pub async fn up_with(args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("landgate-e2e.")
            .tempdir()
            .context("creating the cluster state directory")?
            .keep();
        let script = repo_root().join("tests/e2e/cluster.sh");
        let output = tokio::process::Command::new("bash")
            .arg(&script)
            .arg("up")
            .args(args)
            .env("LANDGATE_CLUSTER_DIR", &dir)
            .env("LANDGATE_E2E_OWNER_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running bash {}", script.display()))?;
        if !output.status.success() {
            let logs = dir.join("logs");
            let where_ = if logs.exists() {
                format!("; logs in {}", logs.display())
            } else {
                // Failed before starting anything (missing tools): no logs.
                let _ = std::fs::remove_dir_all(&dir);
                String::new()
            };
            bail!(
                "{} up failed ({}){where_}:\n{}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        if !args.is_empty() {
            // The node's start-up is long: show its steps and timings.
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
        }
        let env = read_env_file(&dir.join("env"))?;
        let get = |key: &str| {
            env.get(key)
                .cloned()
                .with_context(|| format!("{} has no {key}", dir.join("env").display()))
        };
        Ok(Self {
            kubeconfig: get("KUBECONFIG")?.into(),
            kubectl: get("LANDGATE_KUBECTL")?.into(),
            apiserver_url: get("LANDGATE_APISERVER_URL")?,
            env,
            dir,
        })
    }

    /// A client authenticated as the cluster admin (system:masters).
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        crate::install_crypto_provider();
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .context("loading the e2e kubeconfig")?;
        kube::Client::try_from(config).context("building the kube client")
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Records a process the tests started so that `cluster.sh down` (run by
    /// the reaper when the test binary exits) stops it too. Its command line
    /// must name the state directory: `down` checks that before signalling.
    pub fn register_pid(&self, name: &str, pid: u32) -> anyhow::Result<()> {
        let path = self.dir.join("pids").join(name);
        std::fs::write(&path, format!("{pid}\n"))
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn unregister_pid(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.join("pids").join(name));
    }

    /// Keeps the state directory (logs) after teardown.
    pub fn mark_failed(&self) {
        let _ = std::fs::write(self.dir.join("failed"), b"a test failed\n");
    }

    /// Runs kubectl (same release as the API server) against this cluster.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<Output> {
        tokio::process::Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {} {}", self.kubectl.display(), args.join(" ")))
    }

    /// Creates a namespace with `labels` and waits for its `default`
    /// ServiceAccount: the ServiceAccount admission plugin refuses pods
    /// until kube-controller-manager has made it.
    pub async fn namespace(
        &self,
        client: &kube::Client,
        name: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels},
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
        eventually(
            &format!("ServiceAccount default in namespace {name}"),
            Duration::from_secs(30),
            || async { Ok(accounts.get_opt("default").await?.map(|_| ())) },
        )
        .await?;
        Ok(name.to_owned())
    }
}

fn read_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// The last `lines` lines of a log file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}
