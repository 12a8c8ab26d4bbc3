//! Image resolution through the real `landgate-webhook serve` binary, its
//! flags and a real registry (Debian's docker-registry on loopback, TLS from
//! a test CA, images pushed with skopeo): a pod without `command` is
//! wrapped with the image's entrypoint, PATH and pinned digest; a registry
//! that never answers costs the budget, not more. The resolver's own cases
//! (credentials, indexes, caches, moved tags): crates/registry/tests.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

#[path = "support/webhook.rs"]
mod webhook;

use std::time::{Duration, Instant};

use base64::Engine as _;
use landgate_e2e::registry::{ImageSpec, TestRegistry, black_hole};
use serde_json::{Value, json};
use webhook::Webhook;

/// An AdmissionReview of a CREATE of a pod whose one container runs
/// `image` without `command`.
fn review_of(image: &str) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f7c8a52-1b5e-4c55-9d1e-0d5b7b0d0a01",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "app", "namespace": "shop"},
                "spec": {"containers": [{
                    "name": "app", "image": image,
                    "ports": [{"containerPort": 8080}]
                }]}
            },
            "dryRun": false
        }
    })
    .to_string()
}

/// The pod after landgate's patch.
fn patched(review: &str, answer: &Value) -> Value {
    let review: Value = serde_json::from_str(review).unwrap();
    let mut pod = review["request"]["object"].clone();
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().expect("a patch"))
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    json_patch::patch(&mut pod, &patch).unwrap();
    pod
}

fn env_of<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

/// The value of the first sample of `metric` whose labels contain `labels`.
fn sample(metrics: &str, metric: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(metric) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_pod_without_command_runs_its_image_entrypoint_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(dir.path(), None).await.unwrap();
    let spec = ImageSpec {
        entrypoint: Some(vec!["/usr/bin/app".into()]),
        cmd: Some(vec!["--serve".into(), ":8080".into()]),
        env: vec!["PATH=/opt/app/bin:/usr/bin:/bin".into()],
        working_dir: Some("/srv".into()),
        ..ImageSpec::default()
    };
    let digest = registry.push_image("shop/app", "1.0", &spec).await.unwrap();
    let ca = registry.ca_path();
    let webhook = Webhook::binary_resolving(&["--registry-ca", ca.to_str().unwrap()]).await;

    let image = format!("{}/shop/app:1.0", registry.host());
    let review = review_of(&image);
    let (status, answer) = webhook.post("/mutate", review.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let pod = patched(&review, &answer);
    let app = &pod["spec"]["containers"][0];
    assert_eq!(
        app["command"],
        json!(["/landgate/landgate", "exec", "--", "/usr/bin/app"]),
        "{pod}"
    );
    assert_eq!(app["args"], json!(["--serve", ":8080"]));
    assert_eq!(app["image"], json!(format!("{image}@{digest}")));
    assert_eq!(app["workingDir"], json!("/srv"));
    assert_eq!(
        env_of(app, "PATH"),
        Some("/landgate/bin:/opt/app/bin:/usr/bin:/bin")
    );
    // Resolved: no PATH guessed, so no warning about it.
    let warnings = answer["response"]["warnings"].to_string();
    assert!(!warnings.contains("PATH set to"), "{warnings}");

    // The same image again comes from the cache, as /metrics shows.
    let before = webhook.metrics().await;
    let (status, answer) = webhook.post("/mutate", review.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let after = webhook.metrics().await;
    let hits = |text: &str| sample(text, "landgate_image_cache_hits_total", "");
    assert!(
        hits(&after) > hits(&before),
        "no cache hit counted:\n{after}"
    );
}

#[tokio::test]
async fn a_registry_that_never_answers_costs_the_budget_and_names_the_cause() {
    let (_hole, host) = black_hole().unwrap();
    let image = format!("{host}/shop/app:1.0");

    // Admitted unwrapped (the default), saying why, within the budget.
    let webhook = Webhook::binary_resolving(&["--resolve-timeout", "500ms"]).await;
    let started = Instant::now();
    let (status, answer) = webhook.post("/mutate", review_of(&image)).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let warnings = answer["response"]["warnings"].to_string();
    assert!(
        warnings.contains("could not be looked up: timeout"),
        "{warnings}"
    );
    // A bound on correctness, not a speed goal: the 500ms budget plus the
    // request's own work, far below the API server's 5s.
    assert!(took < Duration::from_secs(2), "answered after {took:?}");

    // Refused under --unknown-entrypoint=reject, naming image and cause.
    let strict = Webhook::binary_resolving(&[
        "--resolve-timeout",
        "500ms",
        "--unknown-entrypoint",
        "reject",
    ])
    .await;
    let (status, answer) = strict.post("/mutate", review_of(&image)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains(&image), "{message}");
    assert!(message.contains("timeout"), "{message}");
}

/// Review finding: reading pull secrets had a budget of its own, so an API
/// server slow to answer and a registry slow to answer together pushed the
/// answer past --resolve-timeout (and past --request-timeout). One budget
/// covers both now.
#[tokio::test]
async fn pull_secrets_and_lookups_share_one_budget() {
    let silent_apiserver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (_hole, host) = black_hole().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = webhook::kubeconfig_for(dir.path(), silent_apiserver.local_addr().unwrap());
    let webhook = Webhook::spawn(
        &[
            "--no-namespace-watch",
            "--pull-secrets",
            "--resolve-timeout",
            "1s",
        ],
        &[("KUBECONFIG", kubeconfig.as_os_str())],
    )
    .await;
    let started = Instant::now();
    let (status, answer) = webhook
        .post("/mutate", review_of(&format!("{host}/shop/app:1.0")))
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let warnings = answer["response"]["warnings"].to_string();
    assert!(warnings.contains("timeout"), "{warnings}");
    // The 1s budget plus the request's own work; before, 1s + 1s.
    assert!(
        took < Duration::from_millis(1700),
        "answered after {took:?}"
    );
}

#[tokio::test]
async fn resolve_timeout_must_fit_in_the_request_timeout() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_landgate-webhook"))
        .args([
            "serve",
            "--no-namespace-watch",
            "--dev-certs",
            "--dev-certs-dir",
        ])
        .arg(tempfile::tempdir().unwrap().path())
        .args(["--resolve-timeout", "5s", "--request-timeout", "3s"])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--resolve-timeout") && stderr.contains("--request-timeout"),
        "{stderr}"
    );
}
