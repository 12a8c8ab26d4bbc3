//! Golden tests: every manifest under `tests/fixtures/pods/` is previewed
//! with the default settings and compared exactly with
//! `tests/fixtures/golden/<file stem>.json` (kind, name, verdict, patch,
//! policies and warnings of each object, or the refusal message). A changed
//! output is a reviewed fixture change: regenerate with
//!
//! ```sh
//! LANDGATE_BLESS=1 cargo test -p landgate-webhook --test golden
//! ```
//!
//! and read the diff before committing it.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use std::path::{Path, PathBuf};
use std::sync::Arc;

use landgate_engine::Outcome;
use landgate_engine::image::{ImageConfig, ImageLookup, Images};
use landgate_engine::mutate::{PodContext, mutate_pod};
use landgate_engine::settings::Settings;
use landgate_webhook::preview::{self, OutputFormat, PreviewError, PreviewItem};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("pods"))
        .expect("tests/fixtures/pods exists")
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    files
}

/// What the golden file records for one manifest.
fn golden_value(result: &Result<Vec<PreviewItem>, PreviewError>) -> Value {
    match result {
        Ok(items) => Value::Array(
            items
                .iter()
                .map(|item| {
                    json!({
                        "kind": item.kind,
                        "name": item.name,
                        "verdict": item.outcome.to_string(),
                        "patch": item.patch,
                        "policies": item.policies,
                        "warnings": item.warnings,
                    })
                })
                .collect(),
        ),
        Err(err) => json!({ "error": err.to_string() }),
    }
}

#[test]
fn previews_match_golden_files() {
    compare_with_golden(&Images::new(), &fixtures().join("golden"));
}

/// The same manifests with their images resolved as
/// `tests/fixtures/images.json` says, against `golden/resolved/`.
#[test]
fn resolved_previews_match_golden_files() {
    compare_with_golden(
        &fixture_images(),
        &fixtures().join("golden").join("resolved"),
    );
}

/// `tests/fixtures/images.json` as the engine's input.
fn fixture_images() -> Images {
    let text = std::fs::read_to_string(fixtures().join("images.json")).unwrap();
    let all: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let text_of = |v: &Value| v.as_str().map(str::to_owned);
    all.into_iter()
        .filter(|(image, _)| image != "//")
        .map(|(image, c)| {
            let config = ImageConfig {
                digest: c["digest"].as_str().unwrap().to_owned(),
                entrypoint: strings(&c["entrypoint"]),
                cmd: strings(&c["cmd"]),
                path: text_of(&c["path"]),
                working_dir: text_of(&c["working_dir"]),
                user: text_of(&c["user"]),
                platform_disagreement: text_of(&c["platform_disagreement"]),
            };
            (image, ImageLookup::Resolved(Arc::new(config)))
        })
        .collect()
}

fn compare_with_golden(images: &Images, dir: &Path) {
    let bless = std::env::var_os("LANDGATE_BLESS").is_some_and(|v| v == "1");
    let settings = Settings::default();
    let mut mismatches = Vec::new();
    let files = manifests();
    assert!(files.len() >= 6, "fixtures missing: {files:?}");
    for file in files {
        let input = std::fs::read_to_string(&file).unwrap();
        let result = preview::Manifest::parse(&input)
            .and_then(|m| m.preview(&settings, images, &|_| Default::default()));
        let actual = serde_json::to_string_pretty(&golden_value(&result)).unwrap() + "\n";
        let stem = file.file_stem().unwrap().to_str().unwrap();
        let golden = dir.join(format!("{stem}.json"));
        if bless {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => mismatches.push(format!(
                "{}: output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
                file.display(),
                golden.display()
            )),
            Err(_) => mismatches.push(format!(
                "{}: no golden file {} (run with LANDGATE_BLESS=1)",
                file.display(),
                golden.display()
            )),
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden mismatches (LANDGATE_BLESS=1 regenerates after review):\n{}",
        mismatches.join("\n")
    );
}

/// Every wrapped template, fed back through the engine, is already wrapped:
/// reinvocation changes nothing.
#[test]
fn previewed_objects_are_stable_on_a_second_pass() {
    let settings = Settings::default();
    for file in manifests() {
        let input = std::fs::read_to_string(&file).unwrap();
        let Ok(items) = preview::preview(&settings, &input) else {
            continue;
        };
        for item in items.iter().filter(|i| i.outcome == Outcome::Wrapped) {
            let again = preview::preview(&settings, &item.object.to_string()).unwrap();
            assert_eq!(again.len(), 1);
            assert_eq!(
                again[0].outcome.to_string(),
                "already-wrapped",
                "{}",
                file.display()
            );
            assert!(again[0].patch.0.is_empty(), "{}", file.display());
            assert_eq!(again[0].policies, item.policies);
        }
    }
}

#[test]
fn renders_every_format() {
    let settings = Settings::default();
    let input = std::fs::read_to_string(fixtures().join("pods/redis.yaml")).unwrap();
    let items = preview::preview(&settings, &input).unwrap();
    assert_eq!(
        items[0].outcome.to_string(),
        "skipped: Service has no pod template"
    );

    let yaml = preview::render(&items, OutputFormat::Yaml).unwrap();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["kind"], "Service");
    assert_eq!(
        docs[1]["spec"]["template"]["spec"]["initContainers"][0]["name"],
        "landgate-init"
    );

    // patch / policy: one JSON document per object with a pod template.
    let patch: Value =
        serde_json::from_str(&preview::render(&items, OutputFormat::Patch).unwrap()).unwrap();
    assert!(
        patch[0]["path"]
            .as_str()
            .unwrap()
            .starts_with("/spec/template/")
    );
    let policies: Value =
        serde_json::from_str(&preview::render(&items, OutputFormat::Policy).unwrap()).unwrap();
    assert_eq!(policies["redis"]["net"]["bind"], json!([6379]));
    assert_eq!(policies["redis"]["net"]["connect"], json!([]));

    let all: Value =
        serde_json::from_str(&preview::render(&items, OutputFormat::Json).unwrap()).unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
}

#[test]
fn refusal_names_the_object() {
    let input = std::fs::read_to_string(fixtures().join("pods/reserved-volume.yaml")).unwrap();
    let err = preview::preview(&Settings::default(), &input).unwrap_err();
    assert!(matches!(err, PreviewError::Rejected { .. }));
    assert!(
        err.to_string().starts_with("Pod clash: pod shop/clash: "),
        "{err}"
    );
}

#[test]
fn bad_documents_are_reported() {
    let err = preview::preview(&Settings::default(), "- a\n- b\n").unwrap_err();
    assert!(
        err.to_string().contains("expected a Kubernetes object"),
        "{err}"
    );
    let err = preview::preview(&Settings::default(), "kind: Pod\n  bad: [").unwrap_err();
    assert!(
        err.to_string().starts_with("document 1: cannot parse"),
        "{err}"
    );
    let err = preview::preview(
        &Settings::default(),
        "kind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {containers: 3}}}\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Deployment d: spec.template.spec is not a valid pod template"),
        "{err}"
    );
    // Empty documents and lists.
    assert!(
        preview::preview(&Settings::default(), "---\n---\n")
            .unwrap()
            .is_empty()
    );
    let list = json!({"kind": "List", "items": [
        {"kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": [{"name": "a", "command": ["x"]}]}}
    ]});
    let items = preview::preview(&Settings::default(), &list.to_string()).unwrap();
    assert_eq!(items[0].outcome.to_string(), "wrapped");
}

/// The engine and the preview agree on pods: the preview is the engine plus
/// re-rooting.
#[test]
fn preview_of_a_pod_is_the_engine_answer() {
    let input = std::fs::read_to_string(fixtures().join("pods/nginx.yaml")).unwrap();
    let item = &preview::preview(&Settings::default(), &input).unwrap()[0];
    let pod = serde_yaml_ng::from_str(&input).unwrap();
    let annotations = Default::default();
    let mutation = mutate_pod(
        &Settings::default(),
        PodContext {
            namespace: "web",
            namespace_annotations: &annotations,
            images: landgate_engine::mutate::NO_IMAGES,
        },
        &pod,
    )
    .unwrap();
    assert_eq!(mutation.outcome, Outcome::Wrapped);
    assert_eq!(item.patch, mutation.patch);
    let mutated = landgate_engine::patch::apply(&pod, &mutation.patch).unwrap();
    assert_eq!(item.object, serde_json::to_value(&mutated).unwrap());
}
