//! The real `landgate-webhook serve` process and the
//! `MutatingWebhookConfiguration` that points the API server at it.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use serde_json::{Value, json};

use crate::cluster::{ControlPlane, tail};
use crate::pki::WebhookPki;
use crate::{eventually, repo_root};

/// The webhook binary under test: `LANDGATE_WEBHOOK_BIN` if set, else the
/// workspace's own `landgate-webhook`, built now (a no-op when up to date)
/// into the target directory and profile this test binary was built in, so
/// that the e2e suite never runs a stale server.
pub async fn webhook_binary() -> anyhow::Result<PathBuf> {
    static BINARY: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    BINARY.get_or_try_init(locate_or_build).await.cloned()
}

async fn locate_or_build() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("LANDGATE_WEBHOOK_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("LANDGATE_WEBHOOK_BIN={} does not exist", path.display());
        }
        return Ok(path);
    }
    // <target>/<profile>/deps/e2e-<hash>
    let exe = std::env::current_exe().context("locating the test binary")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test binary is not in <target>/<profile>/deps")?;
    let target_dir = profile_dir
        .parent()
        .context("the test binary is not in <target>/<profile>/deps")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = tokio::process::Command::new(&cargo);
    build
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(repo_root().join("Cargo.toml"))
        .args(["-p", "landgate-webhook", "--bin", "landgate-webhook"])
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    }
    let output = build
        .stdin(Stdio::null())
        .output()
        .await
        .context("running cargo build -p landgate-webhook")?;
    if !output.status.success() {
        bail!(
            "cargo build -p landgate-webhook failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let binary = profile_dir.join("landgate-webhook");
    if !binary.is_file() {
        bail!(
            "cargo build -p landgate-webhook did not produce {}",
            binary.display()
        );
    }
    Ok(binary)
}

/// A loopback port nobody listens on right now, below the kernel's
/// ephemeral range (32768 and up by default): a port the kernel picks for
/// us can be handed to someone's outgoing connection (the API server's,
/// etcd's) before the webhook binds it, which failed a run with EADDRINUSE.
pub fn free_port() -> anyhow::Result<u16> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..COUNT {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port =
            u16::try_from(FIRST + seed.wrapping_add(step) % COUNT).context("port arithmetic")?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port in {FIRST}..{}", FIRST + COUNT)
}

/// One running `landgate-webhook serve`.
#[derive(Debug)]
pub struct WebhookProcess {
    name: String,
    child: Option<tokio::process::Child>,
    pub port: u16,
    pub admin_port: u16,
    pub log: PathBuf,
}

impl WebhookProcess {
    /// Starts the webhook on fresh loopback ports with `pki`'s certificate,
    /// logs in `<state>/logs/<name>.log`, and waits for `/readyz`.
    pub async fn start(
        cluster: &ControlPlane,
        name: &str,
        pki: &WebhookPki,
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        let binary = webhook_binary().await?;
        let port = free_port()?;
        let admin_port = free_port()?;
        let log = cluster.logs().join(format!("{name}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = tokio::process::Command::new(&binary)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin_port}"))
            .arg("--tls-cert")
            .arg(pki.cert())
            .arg("--tls-key")
            .arg(pki.key())
            .arg("--log-format")
            .arg("json")
            .args(extra_args)
            // The cluster's: the webhook watches its Namespaces (and reads
            // pull secrets with --pull-secrets).
            .env("KUBECONFIG", &cluster.kubeconfig)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the webhook exited at once")?;
        cluster.register_pid(name, pid)?;
        let mut webhook = Self {
            name: name.to_owned(),
            child: Some(child),
            port,
            admin_port,
            log,
        };
        webhook.wait_ready().await?;
        Ok(webhook)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/readyz", self.admin_port);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited during start-up ({status}); last log lines:\n{}",
                    self.name,
                    tail(&self.log, 30)
                );
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} not ready on {url} after 30s; last log lines:\n{}",
                    self.name,
                    tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `clientConfig.url` for this instance's mutating webhook.
    pub fn mutate_url(&self) -> String {
        format!("https://127.0.0.1:{}/mutate", self.port)
    }

    /// `clientConfig.url` for this instance's validating webhook.
    pub fn validate_url(&self) -> String {
        format!("https://127.0.0.1:{}/validate", self.port)
    }

    /// SIGTERM (the graceful path), then wait for the exit.
    pub async fn stop(&mut self, cluster: &ControlPlane) -> anyhow::Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .with_context(|| format!("{} is already stopped", self.name))?;
        if let Some(pid) = child.id() {
            // bash's builtin kill: no procps needed, no unsafe libc call.
            let status = tokio::process::Command::new("bash")
                .arg("-c")
                .arg(format!("kill -TERM {pid}"))
                .status()
                .await?;
            if !status.success() {
                bail!("kill -TERM {pid} failed");
            }
        }
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .with_context(|| format!("{} did not exit within 30s of SIGTERM", self.name))??;
        cluster.unregister_pid(&self.name);
        Ok(status)
    }

    /// The certificate the TLS listener serves to a new connection (DER),
    /// trusting only `ca_pem`.
    pub async fn served_certificate(&self, ca_pem: &[u8]) -> anyhow::Result<Vec<u8>> {
        crate::install_crypto_provider();
        // A new client per call: a pooled connection would show the
        // certificate of its own handshake, not the current one.
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem)?)
            .tls_info(true)
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()?;
        let response = client
            .get(format!("https://127.0.0.1:{}/healthz", self.port))
            .send()
            .await
            .with_context(|| format!("TLS handshake with {}", self.name))?;
        let info = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .context("no TLS info on the response")?;
        Ok(info
            .peer_certificate()
            .context("the server sent no certificate")?
            .to_vec())
    }
}

/// The landgate `MutatingWebhookConfiguration` from `manifests/`, pointed at
/// `url` with `ca_pem` as its bundle (instead of the in-cluster Service).
/// `name` replaces the object's name so that several instances can be
/// registered side by side.
pub fn landgate_configuration(
    name: &str,
    url: &str,
    ca_pem: &[u8],
) -> anyhow::Result<MutatingWebhookConfiguration> {
    let value = match manifest_configuration("MutatingWebhookConfiguration")? {
        Some(value) => value,
        None => fallback_configuration(),
    };
    let mut configuration: MutatingWebhookConfiguration =
        serde_json::from_value(without_client_config(value))
            .context("parsing the MutatingWebhookConfiguration")?;
    configuration.metadata = named(name);
    for webhook in configuration.webhooks.iter_mut().flatten() {
        webhook.client_config = client_config(url, ca_pem);
    }
    Ok(configuration)
}

/// The landgate `ValidatingWebhookConfiguration` from `manifests/`, like
/// [`landgate_configuration`]. There is no fallback: the validating webhook
/// exists only with its manifest.
pub fn landgate_validating_configuration(
    name: &str,
    url: &str,
    ca_pem: &[u8],
) -> anyhow::Result<ValidatingWebhookConfiguration> {
    let value = manifest_configuration("ValidatingWebhookConfiguration")?
        .context("no ValidatingWebhookConfiguration under manifests/")?;
    let mut configuration: ValidatingWebhookConfiguration =
        serde_json::from_value(without_client_config(value))
            .context("parsing the ValidatingWebhookConfiguration")?;
    configuration.metadata = named(name);
    for webhook in configuration.webhooks.iter_mut().flatten() {
        webhook.client_config = client_config(url, ca_pem);
    }
    Ok(configuration)
}

/// The manifest's clientConfig names a Service and carries a placeholder
/// bundle that need not even be base64: dropped before typed parsing.
fn without_client_config(mut value: Value) -> Value {
    if let Some(webhooks) = value.get_mut("webhooks").and_then(Value::as_array_mut) {
        for webhook in webhooks {
            if let Some(object) = webhook.as_object_mut() {
                object.insert("clientConfig".into(), json!({}));
            }
        }
    }
    value
}

fn named(name: &str) -> kube::api::ObjectMeta {
    kube::api::ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

fn client_config(url: &str, ca_pem: &[u8]) -> WebhookClientConfig {
    WebhookClientConfig {
        url: Some(url.to_owned()),
        ca_bundle: Some(ByteString(ca_pem.to_vec())),
        service: None,
    }
}

/// The first document of `kind` under `manifests/` (the plain variant
/// preferred over the cert-manager one), if any.
fn manifest_configuration(kind: &str) -> anyhow::Result<Option<Value>> {
    let mut files = Vec::new();
    collect_yaml(&repo_root().join("manifests"), &mut files)?;
    files.sort_by_key(|path| {
        (
            path.to_string_lossy().contains("cert-manager"),
            path.clone(),
        )
    });
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let Ok(value) = <Value as serde::Deserialize>::deserialize(document) else {
                continue;
            };
            if value.get("kind").and_then(Value::as_str) == Some(kind) {
                return Ok(Some(value));
            }
        }
    }
    Ok(None)
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_yaml(&path, files)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

/// What manifests/ is specified to contain (issue 4), used until it does.
fn fallback_configuration() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "landgate"},
        "webhooks": [{
            "name": "pods.landgate.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "reinvocationPolicy": "IfNeeded",
            "matchPolicy": "Equivalent",
            "timeoutSeconds": 5,
            "namespaceSelector": {"matchLabels": {"landgate.dev/inject": "enabled"}},
            "rules": [
                {
                    "operations": ["CREATE", "UPDATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                    "scope": "Namespaced",
                },
                {
                    "operations": ["UPDATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods/ephemeralcontainers"],
                    "scope": "Namespaced",
                },
            ],
        }],
    })
}

/// Whether the landgate configuration came from `manifests/` (for the log).
pub fn configuration_source() -> &'static str {
    match manifest_configuration("MutatingWebhookConfiguration") {
        Ok(Some(_)) => "manifests/",
        _ => "the inline fallback (no MutatingWebhookConfiguration in manifests/ yet)",
    }
}

/// Waits until `eventually` sees the API server apply a just-registered
/// configuration: its webhook configuration cache is eventually consistent.
pub async fn wait_until<F, Fut>(what: &str, probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<()>>>,
{
    eventually(what, Duration::from_secs(30), probe).await
}
