//! The namespace layer: every Namespace's `landgate.dev/*` annotations from a
//! watch-backed cache (a kube reflector), never fetched during an admission.
//! The webhook is not ready until the cache has synced.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use landgate_engine::derive::ANNOTATION_PREFIX;

use crate::admission::NamespaceLookup;

/// A cache of the cluster's Namespaces, kept by a watch.
#[derive(Clone)]
pub struct NamespaceCache {
    store: Store<Namespace>,
}

impl NamespaceCache {
    /// The cache, and the watch that fills it (to be spawned; it runs until
    /// the process ends, re-listing after errors with the watcher's
    /// backoff).
    pub fn start(client: kube::Client) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (store, writer) = reflector::store();
        let namespaces: Api<Namespace> = Api::all(client);
        let watch = async move {
            watcher(namespaces, watcher::Config::default())
                .default_backoff()
                .reflect(writer)
                .applied_objects()
                .for_each(|event| async move {
                    if let Err(err) = event {
                        // The backoff retries; readiness already says
                        // whether the cache ever synced.
                        tracing::warn!(error = %err, "namespace watch error");
                    }
                })
                .await;
        };
        (Self { store }, watch)
    }

    /// Resolves once the first list has been read.
    pub async fn synced(&self) {
        // Err only if the writer was dropped before the first list: then
        // the cache never becomes ready, and neither does the webhook.
        if self.store.wait_until_ready().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The `landgate.dev/*` annotations of namespace `name`; `None` when the
    /// cache does not know it (yet).
    pub fn annotations(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let namespace = self.store.get(&ObjectRef::new(name))?;
        Some(landgate_annotations(&namespace))
    }

    /// As a lookup for the admission handlers.
    pub fn lookup(&self) -> Arc<NamespaceLookup> {
        let cache = self.clone();
        Arc::new(move |name| cache.annotations(name))
    }
}

/// Only landgate's annotations: the engine validates every `landgate.dev/*`
/// key and ignores the rest, which need not be copied per review.
fn landgate_annotations(namespace: &Namespace) -> BTreeMap<String, String> {
    namespace
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(key, _)| key.starts_with(ANNOTATION_PREFIX))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}
