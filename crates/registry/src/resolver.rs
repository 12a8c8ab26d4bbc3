//! [`Resolver`]: one call looks up all of a pod's images at once, within one
//! budget. Each lookup runs in a task of its own that every caller asking the
//! same thing with the same credential joins (single flight); a caller that
//! runs out of time stops waiting, the task goes on and fills the cache for
//! the next admission.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use landgate_engine::image::{ImageLookup, Images, LookupFailure};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::sync::watch;

use crate::cache::Caches;
use crate::clients::{ClientSettings, Clients};
use crate::config::{Platform, ResolverConfig};
use crate::credentials::DockerConfig;
use crate::error::ResolverError;
use crate::fetch::Failure;
use crate::lookup::{Answer, FlightKey, Lookup};
use crate::metrics::Metrics;

/// A lookup outlives the call that started it, so that a slow registry
/// still fills the cache, but not forever: a registry that accepts
/// connections and never answers would pin a task and its in-flight entry.
/// At least this long, and never shorter than one call's budget. Short: a
/// registry that streams an endless body grows the task's memory until this
/// limit (oci-client reads manifests whole).
const FLIGHT_LIMIT: Duration = Duration::from_secs(5);

/// Looks images up in their registries; cheap to clone (shared inside).
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

/// Shows the settings, never credentials.
impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("platform", &self.inner.platform)
            .field("timeout", &self.inner.timeout)
            .field("docker_config", &self.inner.docker_config)
            .finish_non_exhaustive()
    }
}

/// Where a flight's answer lands (`None` until it does); every caller that
/// joined the flight holds one.
type Landing = watch::Receiver<Option<Answer>>;

pub(crate) struct Inner {
    pub platform: Platform,
    pub clients: Clients,
    pub caches: Mutex<Caches>,
    pub metrics: Metrics,
    timeout: Duration,
    flight_limit: Duration,
    docker_config: DockerConfig,
    inflight: Mutex<HashMap<FlightKey, Landing>>,
}

impl Resolver {
    /// Reads the Docker config and the CA bundle, and builds the registry
    /// client; errors name the file or setting and what is wrong with it.
    pub fn new(config: ResolverConfig) -> Result<Self, ResolverError> {
        let ResolverConfig {
            platform,
            tag_ttl,
            cache_entries,
            timeout,
            docker_config,
            extra_ca,
            insecure_registries,
        } = config;
        if timeout.is_zero() {
            return Err(ResolverError::ZeroTimeout);
        }
        if cache_entries == 0 {
            return Err(ResolverError::ZeroCacheEntries);
        }
        // Compared with the reference's registry as is (clients.rs).
        if let Some(bad) = insecure_registries.iter().find(|registry| {
            registry.is_empty() || registry.contains("://") || registry.contains('/')
        }) {
            return Err(ResolverError::InsecureRegistry(bad.clone()));
        }
        let docker_config = match docker_config {
            Some(path) => read_docker_config(&path)?,
            None => DockerConfig::default(),
        };
        let extra_roots = match extra_ca {
            Some(path) => read_ca(&path)?,
            None => Vec::new(),
        };
        let flight_limit = timeout.max(FLIGHT_LIMIT);
        let clients = Clients::new(ClientSettings {
            insecure: insecure_registries,
            extra_roots,
            io_timeout: flight_limit,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                platform,
                clients,
                caches: Mutex::new(Caches::new(cache_entries, tag_ttl)),
                metrics: Metrics::new(),
                timeout,
                flight_limit,
                docker_config,
                inflight: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Adds the metrics to `registry`, under `image_*`: pass the webhook's
    /// registry (prefix `landgate`) to export `landgate_image_*`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner.metrics.register(registry);
    }

    /// Looks up every image (as the pod spells it) with the pod's pull
    /// secrets, within the resolver's timeout: each image is in the answer,
    /// resolved or failed with why. Never takes longer than the timeout.
    pub async fn resolve(&self, images: &[String], pull_secrets: &[DockerConfig]) -> Images {
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        let mut answers = Images::new();
        let mut waiting: Vec<(&String, String, Landing)> = Vec::new();
        for image in images {
            if answers.contains_key(image) || waiting.iter().any(|(seen, ..)| *seen == image) {
                continue;
            }
            let lookup = match Lookup::new(image, pull_secrets, &self.inner.docker_config) {
                Ok(lookup) => lookup,
                Err(failure) => {
                    answers.insert(image.clone(), self.failed(image, failure));
                    continue;
                }
            };
            if let Some(config) = lookup.cached(&self.inner) {
                answers.insert(image.clone(), ImageLookup::Resolved(config));
                continue;
            }
            let registry = lookup.registry().to_owned();
            waiting.push((image, registry, self.join_or_start(lookup)));
        }
        // The lookups run concurrently in their tasks: waiting for them one
        // after the other costs nothing, and the deadline is common.
        for (image, registry, mut answer) in waiting {
            let waited = tokio::time::timeout_at(deadline, async {
                answer
                    .wait_for(Option::is_some)
                    .await
                    .map(|answer| answer.clone())
            })
            .await;
            let lookup = match waited {
                Ok(Ok(Some(Ok(config)))) => ImageLookup::Resolved(config),
                Ok(Ok(Some(Err(failure)))) => self.failed(image, failure),
                Ok(Ok(None) | Err(_)) => self.failed(
                    image,
                    Failure::new(
                        LookupFailure::Unreachable,
                        format!("the lookup in registry {registry} ended without an answer"),
                    ),
                ),
                Err(_elapsed) => self.failed(
                    image,
                    Failure::new(
                        LookupFailure::Timeout,
                        format!(
                            "registry {registry} did not answer within the resolve timeout \
                             ({:?}); the lookup goes on in the background, so a retry may find \
                             its answer cached",
                            self.inner.timeout
                        ),
                    ),
                ),
            };
            answers.insert(image.clone(), lookup);
        }
        answers
    }

    fn failed(&self, image: &str, failure: Failure) -> ImageLookup {
        self.inner.metrics.error(failure.cause);
        ImageLookup::Failed {
            cause: failure.cause,
            message: format!("image {image}: {}", failure.message),
        }
    }

    /// Joins the lookup in flight for the same reference and credential, or
    /// starts one in a task of its own.
    fn join_or_start(&self, lookup: Lookup) -> Landing {
        let key = lookup.flight_key();
        let mut inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(answer) = inflight.get(&key) {
            self.inner.metrics.shared();
            return answer.clone();
        }
        let (sender, answer) = watch::channel(None);
        inflight.insert(key.clone(), answer.clone());
        drop(inflight);
        let flight = Flight {
            inner: Arc::clone(&self.inner),
            key,
        };
        tokio::spawn(async move {
            let limit = flight.inner.flight_limit;
            let result = tokio::time::timeout(limit, lookup.run(&flight.inner))
                .await
                .unwrap_or_else(|_| {
                    Err(Failure::new(
                        LookupFailure::Timeout,
                        format!(
                            "registry {} did not answer within {limit:?}",
                            lookup.registry()
                        ),
                    ))
                });
            // The answer stays readable to late joiners until the entry
            // goes (when `flight` drops).
            let _ = sender.send(Some(result));
        });
        answer
    }
}

/// A lookup in flight; its entry goes when it ends however it ends (a
/// panicking lookup must not leave callers joining a flight that never
/// lands).
struct Flight {
    inner: Arc<Inner>,
    key: FlightKey,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

fn read_docker_config(path: &Path) -> Result<DockerConfig, ResolverError> {
    let bytes = std::fs::read(path).map_err(|source| ResolverError::ReadDockerConfig {
        path: path.to_owned(),
        source,
    })?;
    let config = DockerConfig::from_json(&bytes).map_err(|source| ResolverError::DockerConfig {
        path: path.to_owned(),
        source,
    })?;
    // Named by its flag, not its path or users: tenants read this origin.
    Ok(config.with_origin("the webhook's --registry-config"))
}

/// The certificates of a PEM bundle, DER.
fn read_ca(path: &Path) -> Result<Vec<Vec<u8>>, ResolverError> {
    let pem = std::fs::read(path).map_err(|source| ResolverError::ReadCa {
        path: path.to_owned(),
        source,
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .map(|certificate| certificate.map(|der| der.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ResolverError::Ca {
            path: path.to_owned(),
            problem: format!("is not valid PEM ({error})"),
        })?;
    if certificates.is_empty() {
        return Err(ResolverError::Ca {
            path: path.to_owned(),
            problem: "holds no CERTIFICATE block".to_owned(),
        });
    }
    Ok(certificates)
}
