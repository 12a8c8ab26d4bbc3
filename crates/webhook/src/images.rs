//! The images of a pod looked up before the engine judges it: the registry
//! resolver (`landgate-registry`), with the pod's pull secrets when
//! `--pull-secrets` allows reading them.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::Api;
use landgate_engine::image::{self, Images};
use landgate_registry::{DockerConfig, Resolver};
use prometheus_client::registry::Registry;

/// Looks images up for the server and the preview.
#[derive(Clone)]
pub struct ImageLookups {
    resolver: Resolver,
    pull_secrets: Option<PullSecrets>,
}

impl ImageLookups {
    pub fn new(resolver: Resolver, pull_secrets: Option<PullSecrets>) -> Self {
        Self {
            resolver,
            pull_secrets,
        }
    }

    pub fn register_metrics(&self, registry: &mut Registry) {
        self.resolver.register_metrics(registry);
    }

    /// What the registry says about the images of `pod`, created in
    /// `namespace`. Bounded by the resolver's budget (and, with
    /// `--pull-secrets`, the secrets' own).
    pub async fn for_pod(&self, pod: &Pod, namespace: &str) -> Images {
        let Some(spec) = pod.spec.as_ref() else {
            return Images::new();
        };
        let images = image::images_of(spec);
        if images.is_empty() {
            return Images::new();
        }
        let secrets = match &self.pull_secrets {
            Some(reader) => reader.of_pod(pod, namespace).await,
            None => Vec::new(),
        };
        self.resolver.resolve(&images, &secrets).await
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
    /// Reading the secrets comes out of the admission budget too.
    timeout: Duration,
}

impl PullSecrets {
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    /// The pod's pull secrets, parsed. One that cannot be read or parsed is
    /// logged and left out: the lookup then goes on with what remains (and
    /// the registry's refusal, if it needed that secret, names the image).
    pub async fn of_pod(&self, pod: &Pod, namespace: &str) -> Vec<DockerConfig> {
        match tokio::time::timeout(self.timeout, self.read(pod, namespace)).await {
            Ok(secrets) => secrets,
            Err(_) => {
                tracing::warn!(
                    namespace,
                    timeout_ms = self.timeout.as_millis() as u64,
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
        let mut seen = BTreeSet::new();
        names.retain(|n| !n.is_empty() && seen.insert(n.clone()));

        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut configs = Vec::with_capacity(names.len());
        for name in names {
            match secrets.get_opt(&name).await {
                Ok(Some(secret)) => match DockerConfig::from_secret(&secret) {
                    Ok(config) => configs.push(config),
                    Err(err) => tracing::warn!(
                        namespace,
                        secret = %name,
                        error = %err,
                        "image pull secret ignored"
                    ),
                },
                Ok(None) => tracing::warn!(
                    namespace,
                    secret = %name,
                    "image pull secret not found"
                ),
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
