//! The registry client: one HTTP client for every lookup, and the tokens
//! each credential earned, kept apart.
//!
//! A registry token is the credential's: one token store shared by all
//! lookups would read an image for a pod with another pod's pull secret; a
//! store per credential fingerprint cannot. Connections carry no
//! credential, so they are shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::redirect::{Attempt, Policy};
use reqwest::{Certificate, Url};

use crate::cache::Lru;
use crate::credentials::Fingerprint;
use crate::error::ResolverError;

/// Credentials in use at once across pods: past this the least recently
/// used one's tokens are dropped and negotiated again on need.
const CLIENTS: usize = 64;

/// Redirects followed for one request (blob downloads are sent on to a
/// storage host once; registries behind a CDN may add one more).
const MAX_REDIRECTS: usize = 5;

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

/// What a registry accepted from one credential, by `registry/repository`
/// (a bearer token is scoped to one repository).
pub(crate) type Tokens = Mutex<HashMap<String, Authorization>>;

/// How requests to a repository are authorised once a challenge was met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Authorization {
    /// The credential itself, HTTP basic.
    Basic,
    /// A token from the registry's token service.
    Bearer(String),
}

pub(crate) struct Clients {
    http: reqwest::Client,
    insecure: Arc<[String]>,
    tokens: Mutex<Lru<Fingerprint, Arc<Tokens>>>,
}

impl Clients {
    /// Builds the HTTP client at once, so that a bad CA bundle fails
    /// start-up rather than every lookup.
    pub fn new(settings: ClientSettings) -> Result<Self, ResolverError> {
        // reqwest is built without a crypto provider of its own and panics
        // without one; ring is the one the rest of landgate uses. Err means
        // another provider was installed first: then that one is used.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = build(&settings).map_err(ResolverError::Client)?;
        Ok(Self {
            http,
            insecure: settings.insecure.into(),
            tokens: Mutex::new(Lru::new(CLIENTS)),
        })
    }

    /// The HTTP client (cheap: reference counted inside).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `http` for the registries spoken to in plain HTTP, else `https`.
    pub fn scheme_for(&self, registry: &str) -> &'static str {
        if self.insecure.iter().any(|host| host == registry) {
            "http"
        } else {
            "https"
        }
    }

    /// The tokens of lookups made with this credential.
    pub fn tokens(&self, credential: &Fingerprint) -> Arc<Tokens> {
        let mut stores = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tokens) = stores.get(credential) {
            return Arc::clone(tokens);
        }
        let tokens = Arc::new(Tokens::default());
        stores.insert(credential.clone(), Arc::clone(&tokens));
        tokens
    }
}

fn build(settings: &ClientSettings) -> Result<reqwest::Client, String> {
    let extra_roots = settings
        .extra_roots
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| error.to_string())?;
    reqwest::Client::builder()
        .tls_certs_merge(extra_roots)
        .connect_timeout(settings.io_timeout)
        .read_timeout(settings.io_timeout)
        .redirect(Policy::custom(follow_redirect))
        .user_agent(concat!("landgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| error.to_string())
}

/// Registries send blob downloads on to storage hosts, always over https.
/// A redirect to plain HTTP would let a registry (or whoever sits on the
/// path) point the webhook at any service inside the cluster network, so it
/// is refused; so is one that leaves https for http on the way.
fn follow_redirect(attempt: Attempt<'_>) -> reqwest::redirect::Action {
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
    }
    match may_follow(attempt.previous(), attempt.url()) {
        Ok(()) => attempt.follow(),
        Err(problem) => attempt.error(problem),
    }
}

fn may_follow(previous: &[Url], next: &Url) -> Result<(), String> {
    let came_from = previous.last().map_or("https", Url::scheme);
    if came_from != "https" || next.scheme() != "https" {
        return Err(format!(
            "the registry redirected from {came_from} to {}; only https to https redirects are followed",
            next.scheme()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        text.parse().unwrap()
    }

    #[test]
    fn only_https_to_https_redirects_are_followed() {
        let registry = url("https://registry.example/v2/app/blobs/sha256:a");
        assert!(
            may_follow(
                std::slice::from_ref(&registry),
                &url("https://storage.example/blob?sig=x")
            )
            .is_ok()
        );
        let error = may_follow(&[registry], &url("http://10.0.0.1:8080/admin")).unwrap_err();
        assert!(error.contains("from https to http"), "{error}");
        let insecure = url("http://registry.local:5000/v2/app/manifests/1");
        let error = may_follow(
            std::slice::from_ref(&insecure),
            &url("http://169.254.169.254/"),
        )
        .unwrap_err();
        assert!(error.contains("from http to http"), "{error}");
        assert!(may_follow(&[insecure], &url("https://storage.example/")).is_err());
    }
}
