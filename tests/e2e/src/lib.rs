//! Harness for landgate's end-to-end tests: a real kube-apiserver (built from
//! source by `build-control-plane.sh`, started by `cluster.sh`) calls the real
//! `landgate-webhook` binary over HTTPS.
//!
//! Rooms:
//! - [`cluster`]: the control plane processes, their state directory, clients.
//! - [`pki`]: the webhook's serving credentials, laid out like a Secret volume
//!   so that rotation is the atomic swap the kubelet does.
//! - [`webhook`]: the `landgate-webhook` process and its
//!   `MutatingWebhookConfiguration`.
//! - [`appender`]: a second, test-only mutating webhook (reinvocation).
//! - [`pods`]: the pods the scenarios submit and what "wrapped" means.
//! - [`node`]: the real node of `cluster.sh up --node`, seen from the host.
#![forbid(unsafe_code)]

use std::path::PathBuf;

pub mod appender;
pub mod cluster;
pub mod node;
pub mod pki;
pub mod pods;
pub mod registry;
pub mod webhook;

/// The repository checkout this crate lives in.
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(|tests| tests.parent())
        .map(PathBuf::from)
        .unwrap_or(manifest)
}

/// Installs ring as rustls' process-wide provider (kube, reqwest and the
/// appender all use rustls); later calls are no-ops.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only means another provider was installed first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Polls `probe` every 200 ms until it returns `Ok(Some(_))` or `timeout`
/// passes; the last error (or "still None") is in the failure message.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: std::time::Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "condition not met yet".to_owned(),
            Err(err) => describe(&err),
        };
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// An error chain in one line; an API server refusal as its code, reason and
/// message (kube's Display repeats the whole Status struct).
pub fn describe(err: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in err.chain() {
        match cause.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => {
                parts.push(format!(
                    "API server said {} {}: {}",
                    status.code, status.reason, status.message
                ));
                break;
            }
            _ => parts.push(cause.to_string()),
        }
    }
    parts.join(": ")
}
