//! The two routers and their handlers: admission reviews and previews over
//! TLS, health, readiness and metrics over plain HTTP. Handlers read the
//! body under its limit, hand it on, and answer; JSON errors name the fix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admission::{self, Webhook};
use crate::connect::{PodMeta, PodReader};
use crate::events::Events;
use crate::images::ImageLookups;
use crate::metrics::{self, Metrics};
use crate::preview::{self, OutputFormat, PreviewError};
use landgate_engine::settings::Settings;

/// Namespace annotations by namespace name: the middle settings layer
/// (`None`: a namespace the cache does not know).
pub type NamespaceAnnotations = Arc<admission::NamespaceLookup>;

/// What the admission handlers share.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    pub namespace_annotations: NamespaceAnnotations,
    pub max_body_bytes: usize,
    /// `None` under --no-resolve.
    pub images: Option<ImageLookups>,
    /// `None` under --no-events (or without a cluster).
    pub events: Option<Events>,
    /// Reads the pod of an exec or attach; `None` without a cluster (such
    /// a request is then refused).
    pub pods: Option<PodReader>,
}

impl AppState {
    pub fn new(settings: Settings, metrics: Metrics, max_body_bytes: usize) -> Self {
        Self {
            settings: Arc::new(settings),
            metrics,
            // Without the Namespace watch (tests, benches): no namespace
            // sets anything.
            namespace_annotations: Arc::new(|_| Some(BTreeMap::new())),
            max_body_bytes,
            images: None,
            events: None,
            pods: None,
        }
    }
}

/// The routes served over TLS.
pub fn admission_router(state: AppState, request_timeout: Duration) -> Router {
    let router = Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/preview", post(preview_handler));
    // `just bench`'s baseline: the same TLS, HTTP stack, limits and body
    // read as `/mutate`, with no review. Never in a shipped build.
    #[cfg(feature = "bench-echo")]
    let router = router.route("/echo", post(echo));
    router
        .fallback(not_found)
        // A bug must cost one request a 500, not the connection (and with
        // HTTP/2, every review multiplexed on it).
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .with_state(state)
}

/// Readiness: true once the TLS listener is bound, false again from the
/// start of shutdown so that endpoints stop sending new reviews.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The plain-HTTP admin routes.
pub fn admin_router(readiness: Readiness, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.get();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = metrics::encode(&registry);
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
        .fallback(not_found)
}

// === handlers ===

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    admission_review(&state, Webhook::Mutating, request).await
}

async fn validate(State(state): State<AppState>, request: Request) -> Response {
    admission_review(&state, Webhook::Validating, request).await
}

#[cfg(feature = "bench-echo")]
async fn echo(State(state): State<AppState>, request: Request) -> Response {
    match read_body(request, state.max_body_bytes).await {
        Ok(body) => json_response(StatusCode::OK, body.to_vec()),
        Err(refusal) => refusal.into_response(),
    }
}

async fn admission_review(state: &AppState, webhook: Webhook, request: Request) -> Response {
    let started = Instant::now();
    let body = match read_body(request, state.max_body_bytes).await {
        Ok(body) => body,
        Err(refusal) => {
            state
                .metrics
                .bad_request(webhook.path(), refusal.0.as_u16());
            return refusal.into_response();
        }
    };
    answer_review(state, webhook, &body, started).await
}

/// The review of one AdmissionReview body and all that follows from it: the
/// metrics, the summary log line, the answer. `started` is when the request
/// reached the handler, so that the duration includes reading the body.
/// Both webhooks look the images of a created pod up (the validating one
/// judges the pod by the same rules, and mostly hits the cache).
async fn answer_review(
    state: &AppState,
    webhook: Webhook,
    body: &[u8],
    started: Instant,
) -> Response {
    let lookup = state.namespace_annotations.clone();
    let reviewed = match admission::parse(body) {
        Ok(parsed) if webhook == Webhook::Mutating && parsed.connect_target().is_some() => {
            let pod = match (&state.pods, parsed.connect_target()) {
                (Some(reader), Some(target)) => reader.pod(&target).await,
                _ => PodMeta::Unavailable(
                    "the webhook runs without an API server connection (--no-namespace-watch)"
                        .into(),
                ),
            };
            Ok(parsed.answer_connect(&*lookup, &pod))
        }
        Ok(parsed) => {
            let excluded = |namespace: &str| {
                state
                    .settings
                    .excluded_namespaces
                    .iter()
                    .any(|n| n == namespace)
            };
            let images = match (&state.images, parsed.created_pod()) {
                (Some(images), Some((pod, namespace))) if !excluded(namespace) => {
                    images.for_pod(pod, namespace).await
                }
                // kubectl debug: the images of the debug containers, for
                // the mutating webhook, which wraps them.
                (Some(images), None) if webhook == Webhook::Mutating => {
                    match parsed.debugged_pod() {
                        Some((pod, namespace, wanted)) if !excluded(namespace) => {
                            images.for_images(pod, namespace, wanted).await
                        }
                        _ => Default::default(),
                    }
                }
                _ => Default::default(),
            };
            Ok(parsed.answer(webhook, &state.settings, &*lookup, &images))
        }
        Err(bad) => Err(bad),
    };
    match reviewed {
        Ok(reviewed) => {
            let body = reviewed.body();
            let elapsed = started.elapsed();
            state.metrics.review(webhook, &reviewed.outcome, elapsed);
            if let Some(audit) = &reviewed.connect {
                state.metrics.connect(audit.decision);
                if audit.decision == "allowed" {
                    tracing::warn!(
                        namespace = %reviewed.namespace,
                        name = %reviewed.name,
                        user = %audit.user,
                        container = %audit.container,
                        command = ?audit.command,
                        "exec or attach admitted unsandboxed (landgate.dev/exec: allow)"
                    );
                }
            }
            if let Some(events) = &state.events {
                let excluded = state
                    .settings
                    .excluded_namespaces
                    .contains(&reviewed.namespace);
                events.observe(webhook, &reviewed, excluded);
            }
            let response = &reviewed.response;
            let refusal = match &reviewed.outcome {
                landgate_engine::Outcome::Refused { reason, .. } => reason,
                _ => "",
            };
            tracing::info!(
                webhook = webhook.path(),
                uid = %reviewed.uid,
                namespace = %reviewed.namespace,
                name = %reviewed.name,
                outcome = metrics::outcome_label(&reviewed.outcome),
                allowed = response.allowed,
                dry_run = reviewed.dry_run,
                patch_bytes = response.patch.as_ref().map_or(0, Vec::len),
                warnings = response.warnings.as_ref().map_or(0, Vec::len),
                refusal,
                reason = reviewed.outcome.reason().unwrap_or(""),
                duration_us = elapsed.as_micros() as u64,
                "admission review"
            );
            json_response(StatusCode::OK, body)
        }
        Err(bad) => {
            state.metrics.bad_request(webhook.path(), 400);
            tracing::warn!(error = %bad, "unreadable admission review");
            error_response(StatusCode::BAD_REQUEST, bad.to_string())
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct PreviewQuery {
    output: Option<String>,
}

async fn preview_handler(
    State(state): State<AppState>,
    Query(query): Query<PreviewQuery>,
    request: Request,
) -> Response {
    let format = match query.output.as_deref() {
        None | Some("json") => None,
        Some("yaml") => Some(OutputFormat::Yaml),
        Some("patch") => Some(OutputFormat::Patch),
        Some("policy") => Some(OutputFormat::Policy),
        Some(other) => {
            state.metrics.bad_request("/preview", 400);
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("unknown output {other:?}: use ?output=json, yaml, patch or policy"),
            );
        }
    };
    let body = match read_body(request, state.max_body_bytes).await {
        Ok(body) => body,
        Err(refusal) => {
            state.metrics.bad_request("/preview", refusal.0.as_u16());
            return refusal.into_response();
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        state.metrics.bad_request("/preview", 400);
        return error_response(
            StatusCode::BAD_REQUEST,
            "request body is not UTF-8: send a Pod or workload manifest as JSON or YAML".into(),
        );
    };
    state.metrics.preview();
    let items = match preview::Manifest::parse(text) {
        Ok(manifest) => {
            let images = match &state.images {
                Some(images) => images.of(&manifest.images()).await,
                None => Default::default(),
            };
            // What the namespace cache knows; a Namespace in the body wins.
            let lookup = state.namespace_annotations.clone();
            manifest.preview(&state.settings, &images, &|namespace| {
                lookup(namespace).unwrap_or_default()
            })
        }
        Err(err) => Err(err),
    };
    let items = match items {
        Ok(items) => items,
        Err(err @ PreviewError::Rejected { .. }) => {
            return error_response(StatusCode::UNPROCESSABLE_ENTITY, err.to_string());
        }
        Err(err) => {
            state.metrics.bad_request("/preview", 400);
            return error_response(StatusCode::BAD_REQUEST, err.to_string());
        }
    };
    match format {
        None => json_response(
            StatusCode::OK,
            serde_json::to_vec(&serde_json::json!({ "items": items }))
                .unwrap_or_else(|err| unreachable!("preview items serialize: {err}")),
        ),
        Some(format) => match preview::render(&items, format) {
            Ok(text) => {
                let content_type = match format {
                    OutputFormat::Yaml => "application/yaml",
                    _ => "application/json",
                };
                ([(header::CONTENT_TYPE, content_type)], text).into_response()
            }
            Err(err) => error_response(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        },
    }
}

async fn not_found(request: Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {} {}: landgate serves POST /mutate, POST /validate and POST /preview",
            request.method(),
            request.uri().path()
        ),
    )
}

/// A refused body: status and message.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error_response(self.0, self.1)
    }
}

/// Reads the body, refusing more than `limit` bytes with a 413 that names the
/// flag to raise.
async fn read_body(request: Request, limit: usize) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is larger than {limit} bytes: raise --max-body-bytes (LANDGATE_MAX_BODY_BYTES) if such objects are expected"
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let body: Body = request.into_body();
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let exceeded =
            std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if exceeded {
            too_large()
        } else {
            Refusal(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {err}"),
            )
        }
    })
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(status: StatusCode, message: String) -> Response {
    let body = serde_json::to_vec(&serde_json::json!({ "error": message }))
        .unwrap_or_else(|err| unreachable!("error body serializes: {err}"));
    json_response(status, body)
}
