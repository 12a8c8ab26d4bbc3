//! A real OCI registry for tests: Debian's `docker-registry` (distribution
//! v2.8) over TLS from a test CA, optionally behind htpasswd basic auth, and
//! images pushed into it by `skopeo` from OCI layouts written here. Neither
//! side is oci-client (what landgate-registry uses), so the two cannot agree
//! on a mistake.
//!
//! Also [`black_hole`]: a registry address that accepts connections and never
//! answers.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::cluster::tail;
use crate::webhook::free_port;

/// What to install when a tool is missing.
pub const INSTALL_HINT: &str = "install it with `apt-get install docker-registry skopeo apache2-utils` (or `bash scripts/setup.sh`)";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// One running `docker-registry serve`, killed on drop.
#[derive(Debug)]
pub struct TestRegistry {
    child: Option<Child>,
    dir: PathBuf,
    host: String,
    ca_pem: String,
    /// `user:password` when the registry wants basic auth.
    credentials: Option<String>,
    log: PathBuf,
}

/// The image config of one test image, and its platform.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `config.Env`, `NAME=value` each.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for ImageSpec {
    /// linux/amd64, nothing set.
    fn default() -> Self {
        Self {
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            working_dir: None,
            user: None,
            os: "linux".to_owned(),
            architecture: "amd64".to_owned(),
            variant: None,
        }
    }
}

impl ImageSpec {
    /// `os/architecture[/variant]`, as in an index.
    pub fn platform(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// Fails with what to install when `program` is not on PATH.
pub fn require(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{program} is not on PATH: {INSTALL_HINT}"))
}

impl TestRegistry {
    /// Starts a registry on a fresh loopback port, TLS from a CA made here,
    /// basic auth when `auth` is given, storage and logs under `dir`; waits
    /// until it answers `/v2/`.
    pub async fn start(dir: &Path, auth: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let binary = require("docker-registry")?;
        require("skopeo")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca_pem = write_certificates(dir)?;
        if let Some((user, password)) = auth {
            write_htpasswd(dir, user, password).await?;
        }
        let log = dir.join("registry.log");
        // A port below the ephemeral range (free_port) can still be taken
        // between the check and the registry's bind: try a few.
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            let host = format!("127.0.0.1:{port}");
            let config = dir.join("config.yml");
            std::fs::write(&config, registry_config(dir, &host, auth.is_some()))
                .with_context(|| format!("writing {}", config.display()))?;
            let log_file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .with_context(|| format!("opening {}", log.display()))?;
            let mut command = std::process::Command::new(&binary);
            command
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file);
            // Distribution reads REGISTRY_* variables over its config file.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("REGISTRY_") {
                    command.env_remove(name);
                }
            }
            let child = command
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            let mut registry = Self {
                child: Some(child),
                dir: dir.to_owned(),
                host,
                ca_pem: ca_pem.clone(),
                credentials: auth.map(|(user, password)| format!("{user}:{password}")),
                log: log.clone(),
            };
            match registry.wait_ready().await {
                Ok(()) => return Ok(registry),
                Err(error) if tail(&log, 5).contains("address already in use") => {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("docker-registry did not start")))
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes())?)
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("https://{}/v2/", self.host);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "docker-registry exited during start-up ({status}); last log lines:\n{}",
                    tail(&self.log, 20)
                );
            }
            // 200, or 401 behind auth: either way it serves the API.
            if let Ok(response) = client.get(&url).send().await
                && (response.status().is_success() || response.status().as_u16() == 401)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "docker-registry not answering {url} after 20s; last log lines:\n{}",
                    tail(&self.log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `127.0.0.1:PORT`, as image references name the registry.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The test CA (PEM file) that signed the registry's certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("certs.d").join("ca.crt")
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Pushes a single-platform image as `repo:tag`; returns its manifest
    /// digest as the registry stores it.
    pub async fn push_image(
        &self,
        repo: &str,
        tag: &str,
        spec: &ImageSpec,
    ) -> anyhow::Result<String> {
        let layout = Layout::create(&self.dir)?;
        let manifest = layout.image(spec)?;
        layout.finish(tag, &manifest)?;
        self.copy(&layout, repo, tag, &manifest, false).await
    }

    /// Pushes a multi-platform OCI index of `specs` (in that order) as
    /// `repo:tag`; returns the index digest.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        specs: &[ImageSpec],
    ) -> anyhow::Result<String> {
        let layout = Layout::create(&self.dir)?;
        let mut manifests = Vec::new();
        for spec in specs {
            let mut entry = layout.image(spec)?;
            let mut platform = json!({"os": spec.os, "architecture": spec.architecture});
            if let Some(variant) = &spec.variant {
                platform["variant"] = json!(variant);
            }
            entry["platform"] = platform;
            manifests.push(entry);
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        let index = layout.blob(OCI_INDEX, &serde_json::to_vec(&index)?)?;
        layout.finish(tag, &index)?;
        self.copy(&layout, repo, tag, &index, true).await
    }

    /// `skopeo copy` from the layout to the registry, digests preserved.
    async fn copy(
        &self,
        layout: &Layout,
        repo: &str,
        tag: &str,
        pushed: &Value,
        all: bool,
    ) -> anyhow::Result<String> {
        let skopeo = require("skopeo")?;
        let digest_file = layout.dir.path().join("digest");
        let policy = layout.dir.path().join("policy.json");
        std::fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )?;
        let mut command = tokio::process::Command::new(&skopeo);
        command
            .arg("--policy")
            .arg(&policy)
            .arg("copy")
            .arg("--quiet")
            .arg("--retry-times=0")
            .arg("--preserve-digests")
            .arg("--digestfile")
            .arg(&digest_file)
            .arg("--dest-cert-dir")
            .arg(self.dir.join("certs.d"));
        match &self.credentials {
            Some(credentials) => command.arg("--dest-creds").arg(credentials),
            None => command.arg("--dest-no-creds"),
        };
        if all {
            command.arg("--all");
        }
        let source = format!("oci:{}:{tag}", layout.dir.path().display());
        let destination = format!("docker://{}/{repo}:{tag}", self.host);
        let output = command
            .arg(&source)
            .arg(&destination)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {}", skopeo.display()))?;
        if !output.status.success() {
            bail!(
                "skopeo copy {source} {destination} failed ({}):\n{}\nregistry log:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                tail(&self.log, 10)
            );
        }
        let digest = std::fs::read_to_string(&digest_file)
            .with_context(|| format!("reading {}", digest_file.display()))?
            .trim()
            .to_owned();
        let expected = pushed["digest"].as_str().unwrap_or_default();
        if digest != expected {
            bail!("skopeo pushed {destination} as {digest}, not the {expected} written");
        }
        Ok(digest)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // By PID: this registry, not any other docker-registry.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A CA, and a certificate for 127.0.0.1 and localhost signed by it:
/// `DIR/tls.{crt,key}` for the registry, `DIR/certs.d/ca.crt` for skopeo
/// (which trusts every `*.crt` in its cert dir) and the tests. Returns the
/// CA PEM.
fn write_certificates(dir: &Path) -> anyhow::Result<String> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "landgate test registry CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate()?)?;

    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "landgate test registry");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    let certs = dir.join("certs.d");
    std::fs::create_dir_all(&certs)?;
    for (path, contents) in [
        (dir.join("tls.crt"), cert.pem()),
        (dir.join("tls.key"), key.serialize_pem()),
        (certs.join("ca.crt"), ca.pem()),
    ] {
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ca.pem())
}

/// `DIR/htpasswd` with one bcrypt entry (the only hash distribution takes).
async fn write_htpasswd(dir: &Path, user: &str, password: &str) -> anyhow::Result<()> {
    let htpasswd = require("htpasswd")?;
    let output = tokio::process::Command::new(&htpasswd)
        .args(["-Bbn", user, password])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", htpasswd.display()))?;
    if !output.status.success() {
        bail!(
            "htpasswd -Bbn failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let path = dir.join("htpasswd");
    std::fs::write(&path, &output.stdout).with_context(|| format!("writing {}", path.display()))
}

fn registry_config(dir: &Path, host: &str, auth: bool) -> String {
    let dir = dir.display();
    let mut config = format!(
        "version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {dir}/storage
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {host}
  secret: landgate-test-registry
  tls:
    certificate: {dir}/tls.crt
    key: {dir}/tls.key
"
    );
    if auth {
        let _ = write!(
            config,
            "auth:
  htpasswd:
    realm: landgate-test
    path: {dir}/htpasswd
"
        );
    }
    config
}

/// An OCI image layout in a temporary directory under the registry's.
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn create(parent: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("layout-")
            .tempdir_in(parent)
            .with_context(|| format!("creating a layout under {}", parent.display()))?;
        std::fs::create_dir_all(dir.path().join("blobs/sha256"))?;
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        Ok(Self { dir })
    }

    /// Writes a blob; returns its descriptor.
    fn blob(&self, media_type: &str, bytes: &[u8]) -> anyhow::Result<Value> {
        let hex: String = Sha256::digest(bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let path = self.dir.path().join("blobs/sha256").join(&hex);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        Ok(json!({
            "mediaType": media_type,
            "digest": format!("sha256:{hex}"),
            "size": bytes.len(),
        }))
    }

    /// Writes one image (layer, config, manifest); returns the manifest's
    /// descriptor.
    fn image(&self, spec: &ImageSpec) -> anyhow::Result<Value> {
        let layer = self.blob(
            OCI_LAYER,
            &tar_with_one_file("landgate-test", spec.platform().as_bytes()),
        )?;
        let mut container = serde_json::Map::new();
        if let Some(entrypoint) = &spec.entrypoint {
            container.insert("Entrypoint".into(), json!(entrypoint));
        }
        if let Some(cmd) = &spec.cmd {
            container.insert("Cmd".into(), json!(cmd));
        }
        if !spec.env.is_empty() {
            container.insert("Env".into(), json!(spec.env));
        }
        if let Some(working_dir) = &spec.working_dir {
            container.insert("WorkingDir".into(), json!(working_dir));
        }
        if let Some(user) = &spec.user {
            container.insert("User".into(), json!(user));
        }
        let mut config = json!({
            "created": "2025-01-01T00:00:00Z",
            "architecture": spec.architecture,
            "os": spec.os,
            "config": container,
            // An uncompressed layer's diff ID is its digest.
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
            "history": [{"created": "2025-01-01T00:00:00Z", "created_by": "landgate test harness"}],
        });
        if let Some(variant) = &spec.variant {
            config["variant"] = json!(variant);
        }
        let config = self.blob(OCI_CONFIG, &serde_json::to_vec(&config)?)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        });
        self.blob(OCI_MANIFEST, &serde_json::to_vec(&manifest)?)
    }

    /// `index.json`: names `top` (a manifest or index descriptor) `tag`.
    fn finish(&self, tag: &str, top: &Value) -> anyhow::Result<()> {
        let mut top = top.clone();
        top["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        let index = json!({"schemaVersion": 2, "manifests": [top]});
        std::fs::write(
            self.dir.path().join("index.json"),
            serde_json::to_vec(&index)?,
        )?;
        Ok(())
    }
}

/// A ustar archive holding one regular file.
fn tar_with_one_file(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut put = |offset: usize, field: &[u8]| {
        header[offset..offset + field.len()].copy_from_slice(field);
    };
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", contents.len()).as_bytes());
    put(136, b"00000000000\0");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    // The checksum is computed with its own field as spaces.
    header[148..156].copy_from_slice(b"        ");
    let checksum: u32 = header.iter().map(|&byte| u32::from(byte)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());

    let mut archive = header.to_vec();
    archive.extend_from_slice(contents);
    archive.resize(archive.len().div_ceil(512) * 512, 0);
    // Two zero blocks end the archive.
    archive.resize(archive.len() + 1024, 0);
    archive
}

/// Accepts connections on a loopback port and never answers: a registry
/// that hangs. Connections stay open until this is dropped.
pub struct BlackHole {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A [`BlackHole`] and its `127.0.0.1:PORT`.
pub fn black_hole() -> anyhow::Result<(BlackHole, String)> {
    // Bound here and held: no other process can take the port meanwhile.
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    let host = listener.local_addr()?.to_string();
    // Non-blocking so that the thread notices `stop`.
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((connection, _)) => held.push(connection),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    });
    Ok((
        BlackHole {
            stop,
            thread: Some(thread),
        },
        host,
    ))
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tar_is_what_tar_reads() {
        let archive = tar_with_one_file("hello", b"world\n");
        assert_eq!(archive.len(), 512 * 4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, &archive).unwrap();
        let output = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let listing = String::from_utf8_lossy(&output.stdout);
        assert!(listing.contains("hello"), "{listing}");
        assert!(listing.contains(" 6 "), "{listing}");
    }
}
