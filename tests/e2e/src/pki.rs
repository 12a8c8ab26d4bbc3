//! The webhook's serving credentials, laid out the way the kubelet projects a
//! Secret volume:
//!
//! ```text
//! DIR/tls.crt -> ..data/tls.crt        (what --tls-cert points at)
//! DIR/tls.key -> ..data/tls.key
//! DIR/ca.crt  -> ..data/ca.crt
//! DIR/..data  -> ..v2                  (swapped atomically on rotation)
//! DIR/..v1/, DIR/..v2/                 (one generation each)
//! ```
//!
//! Rotation writes a new generation and renames a fresh `..data` symlink
//! over the old one, so the webhook never sees a certificate without its key
//! (a file watcher on the cert path misses this swap; re-reading
//! at connection time does not).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::repo_root;

/// SANs the API server dials (`clientConfig.url: https://127.0.0.1:<port>`).
pub const EXTRA_SANS: &str = "IP:127.0.0.1,DNS:localhost";

#[derive(Debug)]
pub struct WebhookPki {
    dir: PathBuf,
    generation: std::sync::atomic::AtomicU32,
}

impl WebhookPki {
    /// A CA and a first serving certificate in `dir`.
    pub async fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pki = Self {
            dir: dir.to_owned(),
            generation: 0.into(),
        };
        // Dangling until the first generation's ..data link exists.
        for file in ["tls.crt", "tls.key", "ca.crt"] {
            std::os::unix::fs::symlink(Path::new("..data").join(file), dir.join(file))
                .with_context(|| format!("linking {}", dir.join(file).display()))?;
        }
        pki.rotate().await?;
        Ok(pki)
    }

    /// Issues a new serving certificate (new key, same CA) and swaps it in
    /// atomically. Returns the new certificate in DER.
    pub async fn rotate(&self) -> anyhow::Result<Vec<u8>> {
        use std::sync::atomic::Ordering;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let name = format!("..v{generation}");
        let out = self.dir.join(&name);
        std::fs::create_dir_all(&out)?;
        // The CA lives in the first generation; later ones reuse it (the
        // generator keeps a CA whose key is already in OUT_DIR).
        if generation > 1 {
            for file in ["ca.crt", "ca.key"] {
                std::fs::copy(self.dir.join("..v1").join(file), out.join(file))
                    .with_context(|| format!("copying the CA into {}", out.display()))?;
            }
        }
        generate_serving_certs(&out).await?;
        let staged = self.dir.join("..data.tmp");
        let _ = std::fs::remove_file(&staged);
        std::os::unix::fs::symlink(&name, &staged)?;
        std::fs::rename(&staged, self.dir.join("..data")).context("swapping the ..data symlink")?;
        self.current_cert_der()
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }

    /// The CA bundle for `clientConfig.caBundle` and test clients.
    pub fn ca_pem(&self) -> anyhow::Result<Vec<u8>> {
        let path = self.dir.join("ca.crt");
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// The serving certificate currently on disk (leaf, DER).
    pub fn current_cert_der(&self) -> anyhow::Result<Vec<u8>> {
        let cert = CertificateDer::from_pem_file(self.cert())
            .with_context(|| format!("parsing {}", self.cert().display()))?;
        Ok(cert.as_ref().to_vec())
    }
}

/// Writes OUT/{ca.crt,ca.key,tls.crt,tls.key} with the project's own
/// generator, certs/generate.sh, which reuses OUT's CA when `ca.key` is there.
async fn generate_serving_certs(out: &Path) -> anyhow::Result<()> {
    which("openssl")?;
    let generator = repo_root().join("certs/generate.sh");
    let output = tokio::process::Command::new("bash")
        .arg(&generator)
        .arg(out)
        .env("EXTRA_SANS", EXTRA_SANS)
        .env("DAYS", "2")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running bash {}", generator.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed ({}):\n{}",
            generator.display(),
            out.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        if !out.join(file).exists() {
            bail!(
                "{} did not write {}",
                generator.display(),
                out.join(file).display()
            );
        }
    }
    Ok(())
}

/// Fails with what to install when `program` is not on PATH.
pub fn which(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!("{program} is not on PATH: install it (apt-get install {program})")
        })
}
