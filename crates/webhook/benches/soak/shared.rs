//! What the load and abuse tasks share: the way in (the proxy, trusting
//! the dev CA), whether the run goes on, and their counts.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::report::Tally;
use crate::wire;

/// The webhook's timeoutSeconds in manifests/: what the API server waits.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the load tasks share.
pub struct Soak {
    pub ca_pem: String,
    pub proxy: SocketAddr,
    pub running: AtomicBool,
    pub tally: Tally,
    pub valid_ok: AtomicUsize,
    pub valid_failed: AtomicUsize,
    pub valid_errors: Mutex<Vec<String>>,
    pub idle_open: AtomicUsize,
    pub idle_reaped: AtomicUsize,
    pub idle_longest_ms: AtomicU64,
}

impl Soak {
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    pub fn tls(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        wire::connector(&self.ca_pem, alpn)
    }

    pub fn client(&self, http1: bool) -> reqwest::Client {
        let builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA"),
            )
            .resolve("localhost", self.proxy)
            .timeout(CLIENT_TIMEOUT)
            // Go's IdleConnTimeout, which client-go keeps.
            .pool_idle_timeout(Duration::from_secs(90));
        let builder = if http1 { builder.http1_only() } else { builder };
        builder.build().expect("client")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.proxy.port())
    }
}
