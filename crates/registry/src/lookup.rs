//! One image lookup: the caches first, then the registry; the image's
//! config out, the caches filled.

use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Instant;

use futures_util::future::join_all;
use landgate_engine::image::{ImageConfig, LookupFailure};
use oci_client::Reference;

use crate::cache::{Caches, DigestKey, TagKey};
use crate::config::Platform;
use crate::credentials::{Credential, DockerConfig, Fingerprint};
use crate::fetch::{Failure, Registry};
use crate::manifest::{Manifest, RunConfig, parse_config, parse_manifest};
use crate::metrics::CacheKind;
use crate::platforms::{PlatformConfig, choose};
use crate::resolver::Inner;

/// The most Linux platforms of one index that are looked up (real
/// multi-platform images have a handful).
const MAX_PLATFORMS: usize = 32;

/// What a lookup ends with.
pub(crate) type Answer = Result<Arc<ImageConfig>, Failure>;

/// The credential's fingerprint and the reference (see
/// [`Lookup::flight_key`]).
pub(crate) type FlightKey = (Fingerprint, String);

/// One image reference, with the credential it is looked up with.
pub(crate) struct Lookup {
    reference: Reference,
    credential: Option<Credential>,
    /// Where the credential came from, for an Unauthorized message.
    origin: Option<String>,
    /// Whether the credential is the pod's own (a pull secret) rather than
    /// the webhook's, which every tenant's lookups may use.
    pods_own: bool,
    fingerprint: Fingerprint,
}

impl Lookup {
    /// Parses `image` and picks its credential: the first pull secret with
    /// one for its registry, else the resolver's Docker config, else none.
    pub fn new(
        image: &str,
        pull_secrets: &[DockerConfig],
        docker_config: &DockerConfig,
    ) -> Result<Self, Failure> {
        let reference: Reference = image
            .parse()
            .map_err(|error| Failure::invalid(format!("not a valid image reference ({error})")))?;
        let found = pull_secrets
            .iter()
            .map(|config| (config, true))
            .chain(std::iter::once((docker_config, false)))
            .find_map(|(config, pods_own)| {
                let credential = config.find(reference.registry(), reference.repository())?;
                Some((
                    credential.clone(),
                    config.origin().map(str::to_owned),
                    pods_own,
                ))
            });
        let (credential, origin, pods_own) = match found {
            Some((credential, origin, pods_own)) => (Some(credential), origin, pods_own),
            None => (None, None, false),
        };
        let fingerprint = Fingerprint::of(credential.as_ref());
        Ok(Self {
            reference,
            credential,
            origin,
            pods_own,
            fingerprint,
        })
    }

    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// Lookups with the same key ask the registry the same question with
    /// the same credential: they share one flight. A tag that is also
    /// pinned (`name:tag@sha256:..`) is looked up by digest only.
    pub fn flight_key(&self) -> FlightKey {
        let reference = match self.reference.digest() {
            Some(digest) => format!("{}@{digest}", self.repository()),
            None => self.reference.whole(),
        };
        (self.fingerprint.clone(), reference)
    }

    /// The answer from the caches alone, when both the tag (if any) and
    /// the config are there. Counts only hits: a miss is counted by the
    /// lookup that then goes to the registry, once however many wait for it.
    pub fn cached(&self, inner: &Inner) -> Option<Arc<ImageConfig>> {
        let mut caches = lock(inner);
        let digest = match self.reference.digest() {
            Some(digest) => digest.to_owned(),
            None => caches.tag(&self.tag_key(), Instant::now())?,
        };
        let config = caches.config(&self.digest_key(&digest))?;
        drop(caches);
        if self.reference.digest().is_none() {
            inner.metrics.hit(CacheKind::Tag);
        }
        inner.metrics.hit(CacheKind::Digest);
        Some(config)
    }

    /// The caches, then the registry for what they lack; fills them.
    pub async fn run(&self, inner: &Inner) -> Answer {
        let known_digest = match self.reference.digest() {
            Some(digest) => Some(digest.to_owned()),
            None => {
                let digest = lock(inner).tag(&self.tag_key(), Instant::now());
                count(inner, CacheKind::Tag, digest.is_some());
                digest
            }
        };
        if let Some(digest) = &known_digest {
            let config = lock(inner).config(&self.digest_key(digest));
            count(inner, CacheKind::Digest, config.is_some());
            if let Some(config) = config {
                return Ok(config);
            }
        }
        let started = Instant::now();
        let answer = self.ask_registry(inner, known_digest).await;
        inner.metrics.registry_lookup(started.elapsed());
        answer.map_err(|failure| match failure.cause {
            LookupFailure::Unauthorized => self.say_which_credential(failure),
            _ => failure,
        })
    }

    /// Which credential the registry refused, or that there was none: what
    /// the person fixing the pull secret needs to know. The username of the
    /// webhook's own credential is not for every tenant to read: only its
    /// origin is named.
    fn say_which_credential(&self, failure: Failure) -> Failure {
        let origin = self.origin.as_deref();
        let note = match &self.credential {
            None => format!(
                "no credentials were sent: neither the pod's image pull secrets nor the \
                 webhook's --registry-config have an entry for {}",
                self.registry()
            ),
            Some(credential) if self.pods_own => format!(
                "the registry refused user {:?} from {}",
                credential.username(),
                origin.unwrap_or("the pull secret")
            ),
            Some(_) => format!(
                "the registry refused the credential from {}",
                origin.unwrap_or("the webhook's --registry-config")
            ),
        };
        Failure::new(failure.cause, format!("{} ({note})", failure.message))
    }

    async fn ask_registry(&self, inner: &Inner, known_digest: Option<String>) -> Answer {
        let tokens = inner.clients.tokens(&self.fingerprint);
        let registry = Registry {
            clients: &inner.clients,
            tokens: &tokens,
            credential: self.credential.as_ref(),
        };
        let reference = match &known_digest {
            Some(digest) => self.reference.clone_with_digest(digest.clone()),
            None => self.reference.clone(),
        };
        let (bytes, digest) = registry.manifest(&reference).await?;
        if known_digest.is_none() {
            // A tag not in the cache (new, or its TTL passed) may still point
            // to a config that is.
            let config = lock(inner).config(&self.digest_key(&digest));
            count(inner, CacheKind::Digest, config.is_some());
            if let Some(config) = config {
                lock(inner).insert_tag(self.tag_key(), digest, Instant::now());
                return Ok(config);
            }
        }
        let config = Arc::new(
            self.image_config(&inner.platform, &registry, &digest, &bytes)
                .await?,
        );
        let mut caches = lock(inner);
        caches.insert_config(self.digest_key(&digest), Arc::clone(&config));
        if self.reference.digest().is_none() {
            caches.insert_tag(self.tag_key(), digest, Instant::now());
        }
        Ok(config)
    }

    /// The config of the manifest `bytes` (whose digest is `digest`): of
    /// the image itself, or of the platform an index resolves to.
    async fn image_config(
        &self,
        wanted: &Platform,
        registry: &Registry<'_>,
        digest: &str,
        bytes: &[u8],
    ) -> Result<ImageConfig, Failure> {
        let (run, platform_disagreement) = match parse_manifest(bytes)
            .map_err(|problem| Failure::invalid(format!("manifest {digest}: {problem}")))?
        {
            Manifest::Image { config_digest } => {
                (self.run_config(registry, &config_digest).await?, None)
            }
            Manifest::Index { entries } => {
                // Attestations (`unknown/unknown`) and other OSes run nowhere
                // landgate wraps.
                let linux: Vec<_> = entries.iter().filter(|entry| entry.os == "linux").collect();
                if linux.is_empty() {
                    let present: Vec<&str> = entries
                        .iter()
                        .map(|entry| entry.platform.as_str())
                        .collect();
                    return Err(Failure::invalid(format!(
                        "the index {digest} names no Linux image (it has {})",
                        if present.is_empty() {
                            "none".to_owned()
                        } else {
                            present.join(", ")
                        }
                    )));
                }
                // Each platform costs two fetches at once: an index naming
                // more than any real image has is refused, not fanned out.
                if linux.len() > MAX_PLATFORMS {
                    return Err(Failure::invalid(format!(
                        "the index {digest} names {} Linux images; landgate compares at most {MAX_PLATFORMS}",
                        linux.len()
                    )));
                }
                let configs = join_all(linux.iter().map(|entry| async move {
                    let platform = Platform::linux(&entry.architecture, entry.variant.as_deref());
                    let reference = self.reference.clone_with_digest(entry.digest.clone());
                    let (bytes, _) = registry.manifest(&reference).await?;
                    let config = match parse_manifest(&bytes) {
                        Ok(Manifest::Image { config_digest }) => {
                            self.run_config(registry, &config_digest).await?
                        }
                        Ok(Manifest::Index { .. }) => {
                            return Err(Failure::invalid(format!(
                                "manifest {}: an index where an image was expected",
                                entry.digest
                            )));
                        }
                        Err(problem) => {
                            return Err(Failure::invalid(format!(
                                "manifest {}: {problem}",
                                entry.digest
                            )));
                        }
                    };
                    Ok(PlatformConfig { platform, config })
                }))
                .await
                .into_iter()
                .collect::<Result<Vec<_>, Failure>>()
                .map_err(|failure| failure.context(format!("index {digest}")))?;
                choose(wanted, configs)
                    .map_err(|problem| Failure::invalid(format!("index {digest}: {problem}")))?
            }
        };
        let RunConfig {
            entrypoint,
            cmd,
            path,
            working_dir,
            user,
        } = run;
        Ok(ImageConfig {
            digest: digest.to_owned(),
            entrypoint,
            cmd,
            path,
            working_dir,
            user,
            platform_disagreement,
        })
    }

    async fn run_config(
        &self,
        registry: &Registry<'_>,
        config_digest: &str,
    ) -> Result<RunConfig, Failure> {
        let bytes = registry.config(&self.reference, config_digest).await?;
        parse_config(&bytes)
            .map_err(|problem| Failure::invalid(format!("config {config_digest}: {problem}")))
    }

    fn repository(&self) -> String {
        format!(
            "{}/{}",
            self.reference.registry(),
            self.reference.repository()
        )
    }

    fn tag_key(&self) -> TagKey {
        TagKey {
            credential: self.fingerprint.clone(),
            repository: self.repository(),
            tag: self.reference.tag().unwrap_or("latest").to_owned(),
        }
    }

    fn digest_key(&self, digest: &str) -> DigestKey {
        DigestKey {
            credential: self.fingerprint.clone(),
            repository: self.repository(),
            digest: digest.to_owned(),
        }
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, Caches> {
    // A panic elsewhere cannot leave the caches half-updated (each change is
    // one insert), so a poisoned lock is still good to use.
    inner.caches.lock().unwrap_or_else(PoisonError::into_inner)
}

fn count(inner: &Inner, kind: CacheKind, hit: bool) {
    if hit {
        inner.metrics.hit(kind);
    } else {
        inner.metrics.miss(kind);
    }
}
