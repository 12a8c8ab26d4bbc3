//! The engine's cost per admission review: a 1-, 10- and 50-container Pod
//! (each container with a command, ports, mounts, env and an exec probe),
//! first pass (wrapping) and second pass (reinvocation of an already
//! wrapped pod).
//!
//! ```sh
//! cargo bench -p landgate-webhook --bench mutate
//! ```
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use std::collections::BTreeMap;
use std::hint::black_box;

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use landgate_engine::Outcome;
use landgate_engine::mutate::{PodContext, mutate_pod};
use landgate_engine::settings::Settings;

fn pod(containers: usize) -> Pod {
    serde_json::from_value(common::pod_json(containers)).expect("bench pod deserializes")
}

fn bench(c: &mut Criterion) {
    let settings = Settings::default();
    let annotations = BTreeMap::new();
    let context = PodContext {
        namespace: "shop",
        namespace_annotations: &annotations,
        images: landgate_engine::mutate::NO_IMAGES,
    };
    let mut group = c.benchmark_group("mutate_pod");
    for n in [1usize, 10, 50] {
        let fresh = pod(n);
        let wrapped = mutate_pod(&settings, context, &fresh).expect("wraps");
        assert_eq!(wrapped.outcome, Outcome::Wrapped);
        let wrapped = landgate_engine::patch::apply(&fresh, &wrapped.patch).expect("applies");
        let again = mutate_pod(&settings, context, &wrapped).expect("second pass");
        assert_eq!(again.outcome, Outcome::AlreadyWrapped);

        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("first_pass", n), &fresh, |b, p| {
            b.iter(|| mutate_pod(&settings, context, black_box(p)))
        });
        group.bench_with_input(BenchmarkId::new("second_pass", n), &wrapped, |b, p| {
            b.iter(|| mutate_pod(&settings, context, black_box(p)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
