//! Serving certificates: loaded from files, re-read when they change on
//! disk, or generated for development.
//!
//! Rotation is checked at handshake time (two `stat` calls) rather than with a
//! file watcher: Kubernetes updates Secret volumes by swapping a `..data`
//! symlink, which inotify watches on the file paths miss, while `stat`
//! follows the symlink and sees the new files.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Where the serving certificate and key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {flag} file {path}: {error}")]
    Read {
        flag: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{flag} file {path} holds no PEM {what}: pass a PEM file (-----BEGIN {what}-----)")]
    NoPem {
        flag: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("{flag} file {path} is not valid PEM: {message}")]
    BadPem {
        flag: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error(
        "--tls-key {key} is not a key this server can use ({message}): use an RSA, ECDSA P-256/P-384 or Ed25519 key"
    )]
    UnsupportedKey { key: PathBuf, message: String },
    #[error(
        "--tls-key {key} does not belong to the certificate in --tls-cert {cert}: pass the key the certificate was issued for"
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot generate development certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write development certificates to {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Installs the process-wide rustls crypto provider (ring). Idempotent.
pub fn install_crypto_provider() {
    // Err means one is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Reads and checks a certificate chain and its key.
pub fn load_certified_key(files: &CertFiles) -> Result<CertifiedKey, TlsError> {
    let cert_pem = fs::read(&files.cert).map_err(|error| TlsError::Read {
        flag: "--tls-cert",
        path: files.cert.clone(),
        error,
    })?;
    let key_pem = fs::read(&files.key).map_err(|error| TlsError::Read {
        flag: "--tls-key",
        path: files.key.clone(),
        error,
    })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::BadPem {
            flag: "--tls-cert",
            path: files.cert.clone(),
            message: err.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoPem {
            flag: "--tls-cert",
            path: files.cert.clone(),
            what: "CERTIFICATE",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| match err {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPem {
            flag: "--tls-key",
            path: files.key.clone(),
            what: "PRIVATE KEY",
        },
        other => TlsError::BadPem {
            flag: "--tls-key",
            path: files.key.clone(),
            message: other.to_string(),
        },
    })?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|err| TlsError::UnsupportedKey {
            key: files.key.clone(),
            message: err.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|_| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
    })?;
    Ok(certified)
}

/// What identifies a version of the files without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    cert: (Option<SystemTime>, u64, u64),
    key: (Option<SystemTime>, u64, u64),
}

impl Stamp {
    fn of(files: &CertFiles) -> Option<Self> {
        let stamp = |path: &Path| {
            fs::metadata(path)
                .ok()
                .map(|m| (m.modified().ok(), m.len(), m.ino()))
        };
        Some(Self {
            cert: stamp(&files.cert)?,
            key: stamp(&files.key)?,
        })
    }
}

struct Current {
    stamp: Option<Stamp>,
    key: Arc<CertifiedKey>,
}

/// Serves the certificate in [`CertFiles`], re-reading it when the files
/// change. A broken update (say the cert written before its key) keeps the
/// previous certificate in service and is retried at the next change.
pub struct ReloadingCertResolver {
    files: CertFiles,
    current: RwLock<Current>,
    on_reload: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingCertResolver {
    /// Loads the files once, failing if they are unusable: a server that
    /// starts without a valid certificate would fail every admission.
    pub fn new(
        files: CertFiles,
        on_reload: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, TlsError> {
        let stamp = Stamp::of(&files);
        let key = Arc::new(load_certified_key(&files)?);
        Ok(Self {
            files,
            current: RwLock::new(Current { stamp, key }),
            on_reload: Box::new(on_reload),
        })
    }

    /// The certificate to serve now, re-read if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let stamp = Stamp::of(&self.files);
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if current.stamp == stamp || stamp.is_none() {
                return current.key.clone();
            }
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.stamp == stamp {
            return current.key.clone();
        }
        current.stamp = stamp;
        match load_certified_key(&self.files) {
            Ok(key) => {
                tracing::info!(cert = %self.files.cert.display(), "serving certificate reloaded");
                current.key = Arc::new(key);
                (self.on_reload)();
            }
            Err(err) => {
                tracing::warn!(error = %err, "serving certificate changed but cannot be used; keeping the previous one");
            }
        }
        current.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 (the API server speaks either).
pub fn server_config(
    resolver: Arc<ReloadingCertResolver>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

// === development certificates ===

/// A throw-away certificate authority for `--dev-certs` and tests.
pub struct DevCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl DevCa {
    pub fn new() -> Result<Self, TlsError> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "landgate development CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let issuer = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issues a serving certificate; returns (cert PEM, key PEM).
    pub fn issue(&self, names: &[String]) -> Result<(String, String), TlsError> {
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "landgate webhook");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Names a development certificate is valid for: loopback, and the in-cluster
/// service names of the default install.
pub fn dev_names() -> Vec<String> {
    [
        "localhost",
        "127.0.0.1",
        "::1",
        "landgate.landgate.svc",
        "landgate.landgate.svc.cluster.local",
    ]
    .map(String::from)
    .to_vec()
}

/// Generates a CA and a serving certificate into `dir` (ca.crt, tls.crt,
/// tls.key) and returns the files to serve and the CA bundle PEM.
pub fn write_dev_certs(dir: &Path) -> Result<(CertFiles, String), TlsError> {
    let ca = DevCa::new()?;
    let (cert, key) = ca.issue(&dev_names())?;
    let write = |name: &str, contents: &str| -> Result<PathBuf, TlsError> {
        let path = dir.join(name);
        fs::create_dir_all(dir)
            .and_then(|()| fs::write(&path, contents))
            .map_err(|error| TlsError::Write {
                path: path.clone(),
                error,
            })?;
        Ok(path)
    };
    write("ca.crt", &ca.ca_pem())?;
    let files = CertFiles {
        cert: write("tls.crt", &cert)?,
        key: write("tls.key", &key)?,
    };
    Ok((files, ca.ca_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn dev_certs_load_and_reload_on_change() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (files, _ca) = write_dev_certs(dir.path()).unwrap();
        let reloads = Arc::new(AtomicUsize::new(0));
        let counter = reloads.clone();
        let resolver = ReloadingCertResolver::new(files.clone(), move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let first = resolver.current();
        assert!(
            Arc::ptr_eq(&first, &resolver.current()),
            "unchanged files are not re-read"
        );

        // Replace both files with a certificate from another CA.
        let (cert, key) = DevCa::new().unwrap().issue(&dev_names()).unwrap();
        fs::write(&files.key, key).unwrap();
        fs::write(&files.cert, cert).unwrap();
        let second = resolver.current();
        assert_ne!(first.cert[0], second.cert[0]);
        assert_eq!(reloads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn broken_update_keeps_serving_the_previous_certificate() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (files, _ca) = write_dev_certs(dir.path()).unwrap();
        let resolver = ReloadingCertResolver::new(files.clone(), || {}).unwrap();
        let first = resolver.current();
        fs::write(&files.key, "not a key").unwrap();
        assert_eq!(resolver.current().cert[0], first.cert[0]);
    }

    #[test]
    fn mismatched_key_is_refused_naming_both_flags() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (files, _ca) = write_dev_certs(dir.path()).unwrap();
        let (_, other_key) = DevCa::new().unwrap().issue(&dev_names()).unwrap();
        fs::write(&files.key, other_key).unwrap();
        let err = load_certified_key(&files).unwrap_err().to_string();
        assert!(
            err.contains("--tls-key") && err.contains("--tls-cert"),
            "{err}"
        );
    }

    #[test]
    fn missing_and_empty_files_name_the_flag() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles {
            cert: dir.path().join("nope.crt"),
            key: dir.path().join("nope.key"),
        };
        let err = load_certified_key(&files).unwrap_err().to_string();
        assert!(err.starts_with("cannot read --tls-cert file"), "{err}");
        fs::write(&files.cert, "").unwrap();
        fs::write(&files.key, "").unwrap();
        let err = load_certified_key(&files).unwrap_err().to_string();
        assert!(err.contains("holds no PEM CERTIFICATE"), "{err}");
    }
}
