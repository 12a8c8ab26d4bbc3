//! The registry clients: one per credential.
//!
//! An `oci_client::Client` remembers the first credential it was given for a
//! registry, and the tokens it got with it, for every later request there.
//! One client shared by all lookups would therefore read an image for a pod
//! with another pod's pull secret; a client per credential fingerprint
//! cannot.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};

use crate::cache::Lru;
use crate::credentials::Fingerprint;
use crate::error::ResolverError;

/// Credentials in use at once across pods: past this the least recently
/// used client (its connections and tokens) is dropped and rebuilt on need.
const CLIENTS: usize = 64;

#[derive(Clone)]
pub(crate) struct ClientSettings {
    /// `host[:port]` spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Extra trusted CAs, DER.
    pub extra_roots: Vec<Vec<u8>>,
    /// Connect and read timeouts: they end lookups that outlive every caller
    /// (see `resolver::FLIGHT_LIMIT`).
    pub io_timeout: Duration,
}

pub(crate) struct Clients {
    settings: ClientSettings,
    clients: Mutex<Lru<Fingerprint, oci_client::Client>>,
}

impl Clients {
    /// Builds the anonymous client at once, so that a bad CA bundle fails
    /// start-up rather than every lookup.
    pub fn new(settings: ClientSettings) -> Result<Self, ResolverError> {
        // reqwest (under oci-client) is built without a crypto provider of
        // its own and panics without one; ring is the one the rest of
        // landgate uses. Err means another provider was installed first:
        // then that one is used.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let anonymous = build(&settings).map_err(ResolverError::Client)?;
        let mut clients = Lru::new(CLIENTS);
        clients.insert(Fingerprint::of(None), anonymous);
        Ok(Self {
            settings,
            clients: Mutex::new(clients),
        })
    }

    /// The client for lookups made with this credential (cheap: a client is
    /// reference counted inside).
    pub fn get(&self, credential: &Fingerprint) -> Result<oci_client::Client, String> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(credential) {
            return Ok(client.clone());
        }
        let client = build(&self.settings)?;
        clients.insert(credential.clone(), client.clone());
        Ok(client)
    }
}

fn build(settings: &ClientSettings) -> Result<oci_client::Client, String> {
    let config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(settings.insecure.clone()),
        extra_root_certificates: settings
            .extra_roots
            .iter()
            .map(|der| Certificate {
                encoding: CertificateEncoding::Der,
                data: der.clone(),
            })
            .collect(),
        // Indexes are resolved here, every platform of them (platforms.rs).
        platform_resolver: None,
        connect_timeout: Some(settings.io_timeout),
        read_timeout: Some(settings.io_timeout),
        user_agent: concat!("landgate/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    // Not Client::new: it falls back to a default client (no extra CA, no
    // insecure registries) when the config cannot be used.
    oci_client::Client::try_from(config).map_err(|error| error.to_string())
}
