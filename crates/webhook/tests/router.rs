//! The two routers in process, without sockets (`tower::ServiceExt::oneshot`):
//! what each route answers, the JSON errors that name the problem, the body
//! limit, readiness, and what the handlers count and log. The same routers
//! over TLS: tests/server.rs.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine as _;
use landgate_engine::settings::Settings;
use landgate_webhook::metrics::Metrics;
use landgate_webhook::server::{AppState, Readiness, admin_router, admission_router};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const POD_CREATE: &str = include_str!("../../../tests/fixtures/admission/pod-create.json");
const POD_CREATE_DRY_RUN: &str =
    include_str!("../../../tests/fixtures/admission/pod-create-dry-run.json");
const CONFIGMAP_CREATE: &str =
    include_str!("../../../tests/fixtures/admission/configmap-create.json");
const POD_CREATE_BAD_ANNOTATION: &str =
    include_str!("../../../tests/fixtures/admission/pod-create-bad-annotation.json");

const NGINX_YAML: &str = "apiVersion: v1
kind: Pod
metadata:
  name: nginx
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    command: [nginx, -g, 'daemon off;']
    ports:
    - containerPort: 8080
";

/// Both routers as the server builds them, with the binary's default
/// settings, body limit and request timeout, sharing one metrics registry.
struct Routes {
    admission: Router,
    admin: Router,
    readiness: Readiness,
}

impl Routes {
    fn new() -> Self {
        Self::with_max_body_bytes(4 * 1024 * 1024)
    }

    fn with_max_body_bytes(max_body_bytes: usize) -> Self {
        let (metrics, registry) = Metrics::new();
        let state = AppState::new(Settings::default(), metrics, max_body_bytes);
        let readiness = Readiness::default();
        Self {
            admission: admission_router(state, Duration::from_secs(3)),
            admin: admin_router(readiness.clone(), Arc::new(registry)),
            readiness,
        }
    }

    /// POSTs `body` to the admission router with its Content-Length, as an
    /// HTTP client does: (status, body as JSON, or as a JSON string if it is
    /// not JSON).
    async fn post(&self, path: &str, body: impl Into<Bytes>) -> (StatusCode, Value) {
        let body = body.into();
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .unwrap();
        let (status, _, body) = call(&self.admission, request).await;
        (status, json_or_text(&body))
    }

    async fn admin_get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let (status, headers, body) = call(&self.admin, request).await;
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn metrics(&self) -> String {
        let (status, _, text) = self.admin_get("/metrics").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        text
    }
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (parts.status, parts.headers, body)
}

fn json_or_text(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// A body sent in chunks, with no Content-Length.
fn chunked(text: String) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = text
        .into_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    Body::from_stream(futures_util::stream::iter(chunks))
}

fn decode_patch(response: &Value) -> json_patch::Patch {
    let encoded = response["response"]["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn error_of(answer: &Value) -> &str {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a JSON error: {answer}"))
}

#[tokio::test]
async fn mutate_answers_a_pod_create_with_a_patch() {
    let routes = Routes::new();
    for fixture in [POD_CREATE, POD_CREATE_DRY_RUN] {
        let review: Value = serde_json::from_str(fixture).unwrap();
        let (status, answer) = routes.post("/mutate", fixture).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        assert_eq!(answer["response"]["patchType"], "JSONPatch");

        let mut pod = review["request"]["object"].clone();
        json_patch::patch(&mut pod, &decode_patch(&answer)).expect("patch applies to the pod");
        assert_eq!(pod["spec"]["initContainers"][0]["name"], "landgate-init");
        let web = &pod["spec"]["containers"][0];
        let argv: Vec<&str> = web["command"]
            .as_array()
            .unwrap()
            .iter()
            .chain(web["args"].as_array().into_iter().flatten())
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            argv,
            [
                "/landgate/landgate",
                "exec",
                "--",
                "nginx",
                "-g",
                "daemon off;"
            ]
        );
        let env = web["env"].as_array().unwrap();
        let policy = env
            .iter()
            .find(|e| e["name"] == "LANDGATE_POLICY")
            .and_then(|e| e["value"].as_str())
            .expect("LANDGATE_POLICY set");
        let policy = landgate_policy::Policy::from_json(policy).unwrap();
        assert_eq!(
            policy.net.bind,
            Some(landgate_policy::PortSet::from([8080]))
        );
        assert!(
            pod["metadata"]["annotations"]["landgate.dev/status"].is_string(),
            "{pod}"
        );
    }
}

#[tokio::test]
async fn the_answer_is_json() {
    let routes = Routes::new();
    let request = Request::post("/mutate")
        .body(Body::from(CONFIGMAP_CREATE))
        .unwrap();
    let (status, headers, _) = call(&routes.admission, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn non_pods_are_allowed_and_bad_annotations_rejected() {
    let routes = Routes::new();
    let (status, answer) = routes.post("/mutate", CONFIGMAP_CREATE).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());

    let (status, answer) = routes.post("/mutate", POD_CREATE_BAD_ANNOTATION).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(
        answer["response"]["uid"],
        "d15ab1ed-0000-4000-8000-000000000003"
    );
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("landgate.dev/enforcement") && message.contains("bogus"),
        "{message}"
    );
}

#[tokio::test]
async fn malformed_reviews_get_400_naming_the_problem() {
    let routes = Routes::new();
    let (status, answer) = routes.post("/mutate", "{\"apiVersion\": ").await;
    assert_eq!(status, 400);
    assert!(
        error_of(&answer).contains("not a valid AdmissionReview"),
        "{answer}"
    );

    let mut review: Value = serde_json::from_str(POD_CREATE).unwrap();
    review["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (status, answer) = routes.post("/mutate", review.to_string()).await;
    assert_eq!(status, 400);
    assert!(error_of(&answer).contains("v1beta1"), "{answer}");
}

#[tokio::test]
async fn unknown_paths_get_404_with_a_json_error() {
    let routes = Routes::new();
    let (status, answer) = routes.post("/nope", "{}").await;
    assert_eq!(status, 404);
    let error = error_of(&answer);
    assert!(
        error.contains("POST /nope") && error.contains("POST /mutate"),
        "{error}"
    );

    let (status, _, text) = routes.admin_get("/nope").await;
    assert_eq!(status, 404);
    assert!(error_of(&json_or_text(text.as_bytes())).contains("GET /nope"));
}

#[tokio::test]
async fn the_wrong_method_gets_405_naming_the_allowed_one() {
    let routes = Routes::new();
    for path in ["/mutate", "/preview"] {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let (status, headers, _) = call(&routes.admission, request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "GET {path}");
        assert_eq!(headers[header::ALLOW], "POST", "GET {path}");
    }
    let request = Request::post("/readyz").body(Body::empty()).unwrap();
    let (status, _, _) = call(&routes.admin, request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn oversized_bodies_get_413_naming_the_flag() {
    let routes = Routes::with_max_body_bytes(4096);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(10_000));
    let (status, answer) = routes.post("/mutate", big.clone()).await;
    assert_eq!(status, 413);
    assert!(error_of(&answer).contains("--max-body-bytes"), "{answer}");
    // Without Content-Length (chunked), the limit still holds.
    for path in ["/mutate", "/preview"] {
        let request = Request::post(path).body(chunked(big.clone())).unwrap();
        let (status, _, body) = call(&routes.admission, request).await;
        assert_eq!(status, 413, "{path}");
        assert!(
            error_of(&json_or_text(&body)).contains("--max-body-bytes"),
            "{path}"
        );
    }
    // A body of exactly the limit is read.
    let padded = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096 - 10));
    assert_eq!(padded.len(), 4096);
    let (status, answer) = routes.post("/mutate", padded).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        error_of(&answer).contains("AdmissionReview"),
        "read, then refused as a review: {answer}"
    );
    let metrics = routes.metrics().await;
    assert!(
        metrics.contains(r#"landgate_bad_requests_total{path="/mutate",code="413"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn preview_answers_json_and_yaml() {
    let routes = Routes::new();
    let (status, answer) = routes.post("/preview", NGINX_YAML).await;
    assert_eq!(status, 200, "{answer}");
    let item = &answer["items"][0];
    assert_eq!(item["kind"], "Pod");
    assert_eq!(item["name"], "nginx");
    assert!(!item["patch"].as_array().unwrap().is_empty());
    assert_eq!(item["policies"]["nginx"]["net"]["bind"], json!([8080]));
    assert_eq!(
        item["object"]["spec"]["initContainers"][0]["name"],
        "landgate-init"
    );

    let as_json: Value = serde_yaml_ng::from_str(NGINX_YAML).unwrap();
    let (status, answer) = routes.post("/preview", as_json.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["items"][0]["policies"]["nginx"]["net"]["bind"],
        json!([8080])
    );

    let request = Request::post("/preview?output=yaml")
        .body(Body::from(NGINX_YAML))
        .unwrap();
    let (status, headers, text) = call(&routes.admission, request).await;
    assert_eq!(status, 200);
    assert_eq!(headers[header::CONTENT_TYPE], "application/yaml");
    let text = String::from_utf8(text.to_vec()).expect("YAML text");
    assert!(text.contains("landgate-init"), "{text}");

    let (status, answer) = routes.post("/preview?output=bogus", NGINX_YAML).await;
    assert_eq!(status, 400);
    assert!(error_of(&answer).contains("?output="));
}

#[tokio::test]
async fn preview_refuses_what_it_cannot_read() {
    let routes = Routes::new();
    let (status, answer) = routes.post("/preview", vec![0xff, 0xfe, b'{']).await;
    assert_eq!(status, 400);
    assert!(error_of(&answer).contains("not UTF-8"), "{answer}");

    let (status, answer) = routes.post("/preview", "- just\n- a list\n").await;
    assert_eq!(status, 400);
    assert!(
        error_of(&answer).contains("expected a Kubernetes object"),
        "{answer}"
    );

    let rejected = NGINX_YAML.replace(
        "  name: nginx\n",
        "  name: nginx\n  annotations:\n    landgate.dev/enforcement: bogus\n",
    );
    let (status, answer) = routes.post("/preview", rejected).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        error_of(&answer).contains("landgate.dev/enforcement"),
        "{answer}"
    );
}

#[tokio::test]
async fn readyz_follows_readiness_and_healthz_is_always_ok() {
    let routes = Routes::new();
    let readyz = || async { routes.admin_get("/readyz").await };
    assert_eq!(readyz().await.0, StatusCode::SERVICE_UNAVAILABLE);
    routes.readiness.set(true);
    let (status, _, text) = readyz().await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "ready\n"));
    // Shutdown begins: endpoints stop sending reviews.
    routes.readiness.set(false);
    let (status, _, text) = readyz().await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    );

    let (status, _, text) = routes.admin_get("/healthz").await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "ok\n"));
}

/// Log lines written on this thread while the capture lives, as the binary
/// writes them with `--log-format json`.
///
/// One global subscriber for the whole test binary, writing into the
/// emitting thread's capture (if any): a thread-local subscriber per test
/// raced with tracing's process-wide callsite cache when tests ran in
/// parallel, and now and then a capture saw nothing.
struct CapturedLog {
    lines: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

impl CapturedLog {
    fn start() -> Self {
        static SUBSCRIBER: std::sync::Once = std::sync::Once::new();
        SUBSCRIBER.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_max_level(tracing::Level::INFO)
                .with_writer(|| Capture)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        CAPTURE.with(|c| *c.borrow_mut() = Some(lines.clone()));
        Self { lines }
    }

    fn text(&self) -> String {
        String::from_utf8(self.lines.lock().unwrap().clone()).unwrap()
    }
}

impl Drop for CapturedLog {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

/// Appends to the current thread's capture; drops lines elsewhere.
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(lines) = c.borrow().as_ref() {
                lines.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// On this thread only (the default current-thread runtime), so that the
// captured subscriber sees the handlers' events.
#[tokio::test(flavor = "current_thread")]
async fn metrics_count_what_happened() {
    let log = CapturedLog::start();
    let routes = Routes::new();
    routes.post("/mutate", POD_CREATE).await;
    routes.post("/mutate", CONFIGMAP_CREATE).await;
    routes.post("/mutate", POD_CREATE_BAD_ANNOTATION).await;
    routes.post("/mutate", "garbage").await;
    let (status, headers, metrics) = routes.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{headers:?}"
    );
    for line in [
        r#"landgate_admission_reviews_total{webhook="mutate",outcome="mutated"} 1"#,
        r#"landgate_admission_reviews_total{webhook="mutate",outcome="skipped"} 1"#,
        r#"landgate_admission_reviews_total{webhook="mutate",outcome="rejected"} 1"#,
        r#"landgate_refusals_total{webhook="mutate",reason="invalid-annotation"} 1"#,
        r#"landgate_bad_requests_total{path="/mutate",code="400"} 1"#,
        "landgate_admission_review_duration_seconds_count 3",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    // The review log line names the pod and never carries the pod body.
    let log = log.text();
    let line = log
        .lines()
        .find(|l| l.contains("\"outcome\":\"mutated\""))
        .unwrap_or_else(|| panic!("a log line for the mutated review in:\n{log}"));
    let entry: Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["namespace"], "shop");
    assert_eq!(entry["name"], "web");
    assert!(!line.contains("nginx:1.27"), "{line}");
}

/// `/validate` judges the pod as it will be stored: the fixture as the
/// user wrote it (the mutating webhook never saw it) is refused naming the
/// container; the same pod as `/mutate` patched it is admitted, unpatched.
/// Each is counted and logged under the validating webhook.
#[tokio::test(flavor = "current_thread")]
async fn validate_refuses_an_unwrapped_pod_and_admits_the_wrapped_one() {
    let log = CapturedLog::start();
    let routes = Routes::new();
    let (status, refused) = routes.post("/validate", POD_CREATE).await;
    assert_eq!(status, StatusCode::OK, "{refused}");
    assert_eq!(refused["response"]["allowed"], json!(false), "{refused}");
    assert_eq!(refused["response"]["status"]["code"], json!(403));
    let message = refused["response"]["status"]["message"].as_str().unwrap();
    for part in [
        "is not wrapped but should be",
        "carries no landgate.dev/status",
        "(spec.containers[0])",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }

    let (_, mutated) = routes.post("/mutate", POD_CREATE).await;
    let mut review: Value = serde_json::from_str(POD_CREATE).unwrap();
    json_patch::patch(&mut review["request"]["object"], &decode_patch(&mutated)).unwrap();
    let (status, admitted) = routes.post("/validate", review.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{admitted}");
    assert_eq!(admitted["response"]["allowed"], json!(true), "{admitted}");
    assert!(admitted["response"].get("patch").is_none(), "{admitted}");
    assert!(admitted["response"].get("warnings").is_none(), "{admitted}");

    let metrics = routes.metrics().await;
    for line in [
        r#"landgate_admission_reviews_total{webhook="validate",outcome="rejected"} 1"#,
        r#"landgate_admission_reviews_total{webhook="validate",outcome="skipped"} 1"#,
        r#"landgate_refusals_total{webhook="validate",reason="not-wrapped"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    let log = log.text();
    let line = log
        .lines()
        .find(|l| l.contains("\"refusal\":\"not-wrapped\""))
        .unwrap_or_else(|| panic!("a log line for the refusal in:\n{log}"));
    let entry: Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["webhook"], "/validate");
    assert!(
        entry["reason"].as_str().unwrap().contains("is not wrapped"),
        "{entry}"
    );
}
