//! The whole admission review, bytes in to bytes out, for a 1-, 10- and
//! 50-container Pod CREATE, next to the floor any webhook pays for the same
//! body: a plain `serde_json` parse and serialise of that AdmissionReview
//! (once into `serde_json::Value`, once into the typed `Pod`). And the
//! validating webhook's review of the same pod as the mutating one stored
//! it (`landgate_validate`).
//!
//! ```sh
//! cargo bench -p landgate-webhook --bench review
//! ```
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use std::collections::BTreeMap;
use std::hint::black_box;

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::AdmissionReview;
use landgate_engine::mutate::NO_IMAGES;
use landgate_webhook::admission::{self, Webhook};
use serde_json::json;

/// An AdmissionReview of a CREATE of the benches' Pod with `containers`
/// containers.
fn review(containers: usize) -> Vec<u8> {
    let pod = common::pod_json(containers);
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "bench",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "admin", "groups": ["system:authenticated"]},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    }))
    .expect("bench review serializes")
}

fn bench(c: &mut Criterion) {
    let settings = landgate_engine::settings::Settings::default();
    let no_annotations = |_: &str| Some(BTreeMap::new());
    let mut group = c.benchmark_group("review");
    for n in [1usize, 10, 50] {
        let body = review(n);
        let answered = landgate_webhook::admission::review(&settings, &no_annotations, &body)
            .expect("the bench review is answered");
        assert!(
            String::from_utf8_lossy(&answered.body()).contains("\"patch\""),
            "the bench pod is wrapped"
        );

        // The same review with the pod as stored: the mutating patch applied.
        let patch: json_patch::Patch =
            serde_json::from_slice(answered.response.patch.as_deref().unwrap()).unwrap();
        let mut stored: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json_patch::patch(&mut stored["request"]["object"], &patch).unwrap();
        let stored = serde_json::to_vec(&stored).unwrap();
        let validate = |body: &[u8]| {
            admission::parse(body).unwrap().answer(
                Webhook::Validating,
                &settings,
                &no_annotations,
                NO_IMAGES,
            )
        };
        assert!(
            validate(&stored).response.allowed,
            "the stored pod is admitted"
        );

        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("landgate_validate", n),
            &stored,
            |b, body| b.iter(|| validate(black_box(body)).body()),
        );
        group.bench_with_input(BenchmarkId::new("landgate", n), &body, |b, body| {
            b.iter(|| {
                landgate_webhook::admission::review(&settings, &no_annotations, black_box(body))
            })
        });
        group.bench_with_input(BenchmarkId::new("serde_value", n), &body, |b, body| {
            b.iter(|| {
                let v: serde_json::Value = serde_json::from_slice(black_box(body)).expect("parses");
                serde_json::to_vec(&v).expect("serializes")
            })
        });
        group.bench_with_input(BenchmarkId::new("serde_typed_pod", n), &body, |b, body| {
            b.iter(|| {
                let v: AdmissionReview<Pod> =
                    serde_json::from_slice(black_box(body)).expect("parses");
                serde_json::to_vec(&v).expect("serializes")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
