//! Admission latency of a 3-container pod without `command` whose images
//! live in a local registry (Debian's docker-registry on loopback, TLS from a
//! test CA, images pushed with skopeo): with a cold cache (a new resolver for
//! every review: three manifest and three config fetches) and a warm one.
//! The whole review: parse, look up, engine, answer serialised.
//!
//! ```sh
//! cargo bench -p landgate-webhook --bench resolve
//! ```
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use landgate_e2e::registry::{ImageSpec, TestRegistry};
use landgate_engine::settings::Settings;
use landgate_registry::{Resolver, ResolverConfig};
use landgate_webhook::admission::{self, Webhook};
use landgate_webhook::images::ImageLookups;
use serde_json::json;

fn review(images: &[String]) -> Vec<u8> {
    let containers: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image, "ports": [{"containerPort": 8080 + i}]}))
        .collect();
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "bench", "namespace": "shop"},
                "spec": {"containers": containers}
            }
        }
    }))
    .unwrap()
}

async fn answer(lookups: &ImageLookups, settings: &Settings, body: &[u8]) -> Duration {
    let no_annotations = |_: &str| Some(BTreeMap::new());
    let started = Instant::now();
    let parsed = admission::parse(body).unwrap();
    let (pod, namespace) = parsed.created_pod().unwrap();
    let images = lookups.for_pod(pod, namespace).await;
    let reviewed = parsed.answer(Webhook::Mutating, settings, &no_annotations, &images);
    std::hint::black_box(reviewed.body());
    let took = started.elapsed();
    assert_eq!(
        landgate_webhook::metrics::outcome_label(&reviewed.outcome),
        "mutated",
        "{:?}",
        reviewed.outcome
    );
    took
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<34} n={:<4} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
        samples.len(),
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    // `cargo test --benches` runs this too: keep that a quick smoke run.
    let smoke = std::env::args().all(|a| a != "--bench");
    let (cold_runs, warm_runs) = if smoke { (2, 5) } else { (50, 500) };
    landgate_webhook::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let registry = TestRegistry::start(dir.path(), None).await.unwrap();
        let mut images = Vec::new();
        for (i, name) in ["web", "sidecar", "agent"].iter().enumerate() {
            let spec = ImageSpec {
                entrypoint: Some(vec![format!("/usr/bin/{name}")]),
                cmd: Some(vec!["--port".into(), format!("{}", 8080 + i)]),
                env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
                ..ImageSpec::default()
            };
            registry
                .push_image(&format!("bench/{name}"), "1.0", &spec)
                .await
                .unwrap();
            images.push(format!("{}/bench/{name}:1.0", registry.host()));
        }
        let body = review(&images);
        let settings = Settings::default();
        let config = ResolverConfig {
            extra_ca: Some(registry.ca_path()),
            ..ResolverConfig::default()
        };
        let lookups = |config: &ResolverConfig| {
            ImageLookups::new(Resolver::new(config.clone()).unwrap(), None, config.timeout)
        };

        let mut cold = Vec::new();
        for _ in 0..cold_runs {
            // A new resolver: an empty cache, built before the clock starts
            // (the server builds it once, at start).
            let fresh = lookups(&config);
            cold.push(answer(&fresh, &settings, &body).await);
        }
        let warm_lookups = lookups(&config);
        answer(&warm_lookups, &settings, &body).await;
        let mut warm = Vec::new();
        for _ in 0..warm_runs {
            warm.push(answer(&warm_lookups, &settings, &body).await);
        }
        let mut offline = Vec::new();
        let no_annotations = |_: &str| Some(BTreeMap::new());
        for _ in 0..warm_runs {
            let started = Instant::now();
            let reviewed = admission::review(&settings, &no_annotations, &body).unwrap();
            std::hint::black_box(reviewed.body());
            offline.push(started.elapsed());
        }
        println!("3-container pod without command, images in a loopback registry (TLS):");
        summary("cold cache (manifests, configs fetched)", cold);
        summary("warm cache", warm);
        summary("no lookup (--no-resolve, skipped)", offline);
    });
}
