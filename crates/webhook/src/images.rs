//! The images of a pod looked up before the engine judges it: the registry
//! resolver (`landgate-registry`), with the pod's pull secrets when
//! `--pull-secrets` allows reading them.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::Api;
use landgate_engine::image::{self, ImageLookup, Images, LookupFailure};
use landgate_registry::{DockerConfig, Resolver};
use prometheus_client::registry::Registry;

/// Looks up images for the server and the preview.
#[derive(Clone)]
pub struct ImageLookups {
    resolver: Resolver,
    pull_secrets: Option<PullSecrets>,
    /// The whole lookup of one pod, pull secrets included
    /// (`--resolve-timeout`).
    budget: Duration,
}

impl ImageLookups {
    pub fn new(resolver: Resolver, pull_secrets: Option<PullSecrets>, budget: Duration) -> Self {
        Self {
            resolver,
            pull_secrets,
            budget,
        }
    }

    pub fn register_metrics(&self, registry: &mut Registry) {
        self.resolver.register_metrics(registry);
    }

    /// What the registry says about the images of `pod`, created in
    /// `namespace`, within the budget: reading the pull secrets takes at
    /// most half of it, and whatever is not answered when it runs out
    /// counts as timed out.
    pub async fn for_pod(&self, pod: &Pod, namespace: &str) -> Images {
        let Some(spec) = pod.spec.as_ref() else {
            return Images::new();
        };
        self.for_images(pod, namespace, image::images_of(spec))
            .await
    }

    /// What the registry says about `images` of `pod` (its pull secrets
    /// used), within the budget as [`ImageLookups::for_pod`].
    pub async fn for_images(&self, pod: &Pod, namespace: &str, images: Vec<String>) -> Images {
        if images.is_empty() {
            return Images::new();
        }
        let lookup = async {
            let secrets = match &self.pull_secrets {
                Some(reader) => reader.of_pod(pod, namespace, self.budget / 2).await,
                None => Vec::new(),
            };
            self.resolver.resolve(&images, &secrets).await
        };
        match tokio::time::timeout(self.budget, lookup).await {
            Ok(found) => found,
            Err(_) => images
                .into_iter()
                .map(|image| {
                    let failed = ImageLookup::Failed {
                        cause: LookupFailure::Timeout,
                        message: format!(
                            "not resolved within --resolve-timeout ({:?}), pull secrets included",
                            self.budget
                        ),
                    };
                    (image, failed)
                })
                .collect(),
        }
    }

    /// What the registry says about `images` (the preview's).
    pub async fn of(&self, images: &[String]) -> Images {
        if images.is_empty() {
            return Images::new();
        }
        self.resolver.resolve(images, &[]).await
    }
}

/// Reads a pod's image pull secrets through the API server: those the pod
/// names, then its ServiceAccount's. Needs `get` on secrets and
/// serviceaccounts in every opted-in namespace (the `pull-secrets`
/// kustomize component), which is why it is opt-in.
#[derive(Clone)]
pub struct PullSecrets {
    client: kube::Client,
}

/// The most pull secrets read for one pod: each is a request to the API
/// server made with landgate's identity, on every pod creation.
const MAX_PULL_SECRETS: usize = 8;

impl PullSecrets {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// The pod's pull secrets, parsed, read within `timeout`. One that
    /// cannot be read or parsed is logged and left out: the lookup goes on
    /// with what remains (and the registry's refusal, if it needed that
    /// secret, names the image).
    pub async fn of_pod(&self, pod: &Pod, namespace: &str, timeout: Duration) -> Vec<DockerConfig> {
        match tokio::time::timeout(timeout, self.read(pod, namespace)).await {
            Ok(secrets) => secrets,
            Err(_) => {
                tracing::warn!(
                    namespace,
                    timeout_ms = timeout.as_millis() as u64,
                    "image pull secrets not read in time; looking images up without them"
                );
                Vec::new()
            }
        }
    }

    async fn read(&self, pod: &Pod, namespace: &str) -> Vec<DockerConfig> {
        let spec = pod.spec.as_ref();
        let mut names: Vec<String> = spec
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .map(|r| r.name.clone())
            .collect();
        let account = spec
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        if is_object_name(account) {
            let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
            match accounts.get_opt(account).await {
                Ok(Some(sa)) => {
                    names.extend(sa.image_pull_secrets.into_iter().flatten().map(|r| r.name))
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(
                    namespace,
                    service_account = account,
                    error = %err,
                    "cannot read the ServiceAccount's image pull secrets"
                ),
            }
        }
        let mut seen = BTreeSet::new();
        // Names go into a URL path: only valid object names are requested.
        names.retain(|n| is_object_name(n) && seen.insert(n.clone()));
        if names.len() > MAX_PULL_SECRETS {
            tracing::warn!(
                namespace,
                names = names.len(),
                "only the first {MAX_PULL_SECRETS} image pull secrets are read"
            );
            names.truncate(MAX_PULL_SECRETS);
        }

        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let reads = names.iter().map(|name| {
            let secrets = &secrets;
            async move { (name, secrets.get_opt(name).await) }
        });
        let mut configs = Vec::with_capacity(names.len());
        for (name, read) in futures_util::future::join_all(reads).await {
            match read {
                Ok(Some(secret)) => match DockerConfig::from_secret(&secret) {
                    Ok(config) => configs.push(config),
                    Err(err) => tracing::warn!(
                        namespace,
                        secret = %name,
                        error = %err,
                        "image pull secret ignored"
                    ),
                },
                Ok(None) => {
                    tracing::warn!(namespace, secret = %name, "image pull secret not found")
                }
                Err(err) => tracing::warn!(
                    namespace,
                    secret = %name,
                    error = %err,
                    "cannot read image pull secret"
                ),
            }
        }
        configs
    }
}

/// A DNS subdomain (RFC 1123), as Kubernetes names Secrets and
/// ServiceAccounts.
fn is_object_name(name: &str) -> bool {
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(&first), Some(&last)) => {
                    ok(first) && ok(last) && bytes.iter().all(|&c| ok(c) || c == b'-')
                }
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::is_object_name;

    #[test]
    fn only_object_names_are_requested() {
        for good in ["registry", "my-registry.example", "a", "0pull"] {
            assert!(is_object_name(good), "{good}");
        }
        for bad in [
            "", "..", "../other", "a/b", "Registry", "-a", "a-", "a..b", "a?x=1",
        ] {
            assert!(!is_object_name(bad), "{bad}");
        }
    }
}
