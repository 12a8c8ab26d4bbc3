//! Transport: the HTTPS admission listener (rustls, HTTP/2 and HTTP/1.1), the
//! plain admin listener (health, readiness, metrics), limits and graceful
//! shutdown. Handlers only extract and answer; decisions live in
//! [`crate::admission`] and [`crate::preview`].

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admission::{self, ReviewOutcome};
use crate::metrics::{self, Metrics};
use crate::preview::{self, OutputFormat, PreviewError};
use crate::settings::Settings;
use crate::tls::{self, CertFiles, ReloadingCertResolver, TlsError};

/// A TLS handshake that has not finished in this time is dropped, so that
/// idle sockets cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to send request headers (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server listens and what it tolerates.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub cert_files: CertFiles,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr} ({flag}): {error}")]
    Bind {
        flag: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("admin server failed: {0}")]
    Admin(std::io::Error),
}

/// Namespace annotations by namespace name: the middle settings layer.
pub type NamespaceAnnotations = Arc<dyn Fn(&str) -> BTreeMap<String, String> + Send + Sync>;

/// What the admission handlers share.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    pub namespace_annotations: NamespaceAnnotations,
    pub max_body_bytes: usize,
}

impl AppState {
    pub fn new(settings: Settings, metrics: Metrics, max_body_bytes: usize) -> Self {
        Self {
            settings: Arc::new(settings),
            metrics,
            namespace_annotations: Arc::new(|_| BTreeMap::new()),
            max_body_bytes,
        }
    }
}

/// The routes served over TLS.
pub fn admission_router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/preview", post(preview_handler))
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

/// Runs both listeners until `shutdown` resolves, then drains in-flight
/// requests for at most `shutdown_grace`.
pub async fn serve(
    config: ServerConfig,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (metrics, registry) = Metrics::new();
    let reload_metrics = metrics.clone();
    let resolver = Arc::new(ReloadingCertResolver::new(
        config.cert_files.clone(),
        move || reload_metrics.certificate_reloaded(),
    )?);
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(resolver)?));

    let readiness = Readiness::default();
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .map_err(|error| ServeError::Bind {
            flag: "--admin-listen",
            addr: config.admin_listen,
            error,
        })?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|error| ServeError::Bind {
            flag: "--listen",
            addr: config.listen,
            error,
        })?;
    tracing::info!(
        listen = %config.listen,
        admin = %config.admin_listen,
        "serving admission reviews on https://{}/mutate",
        config.listen
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let readiness_on_stop = readiness.clone();
    tokio::spawn(async move {
        shutdown.await;
        readiness_on_stop.set(false);
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop_tx.send(true);
    });

    let mut admin_stop = stop_rx.clone();
    let admin_app = admin_router(readiness.clone(), Arc::new(registry));
    let admin_task = tokio::spawn(async move {
        axum::serve(admin, admin_app)
            .with_graceful_shutdown(async move {
                stopped(&mut admin_stop).await;
            })
            .await
    });

    let state = AppState::new(settings, metrics, config.max_body_bytes);
    let app = admission_router(state, config.request_timeout);
    readiness.set(true);
    serve_tls(listener, acceptor, app, stop_rx, config.shutdown_grace).await;

    match admin_task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(ServeError::Admin(err)),
        Err(join) => Err(ServeError::Admin(std::io::Error::other(join))),
    }
}

async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(app.clone());
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder.serve_connection(TokioIo::new(tls), service).into_owned();
                    if let Err(err) = watcher.watch(connection).await {
                        tracing::debug!(%peer, error = %err, "connection closed with error");
                    }
                });
            }
            () = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_seconds = grace.as_secs(), "shutdown grace period over; closing remaining connections");
        }
    }
}

/// Resolves once shutdown has begun. The watch guard is dropped inside, so
/// that futures awaiting this stay `Send`.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

// === handlers ===

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let body = match read_body(request, state.max_body_bytes).await {
        Ok(body) => body,
        Err(refusal) => {
            state.metrics.bad_request("/mutate", refusal.0.as_u16());
            return refusal.into_response();
        }
    };
    let lookup = state.namespace_annotations.clone();
    match admission::review(&state.settings, &*lookup, &body) {
        Ok(reviewed) => {
            let elapsed = started.elapsed();
            state.metrics.review(reviewed.outcome, elapsed);
            let allowed = !matches!(
                reviewed.outcome,
                ReviewOutcome::Rejected | ReviewOutcome::Error
            );
            tracing::info!(
                uid = %reviewed.uid,
                namespace = %reviewed.namespace,
                name = %reviewed.name,
                outcome = reviewed.outcome.as_str(),
                allowed,
                dry_run = reviewed.dry_run,
                patch_ops = reviewed.patch_ops,
                warnings = reviewed.warnings,
                reason = reviewed.reason.as_deref().unwrap_or(""),
                duration_us = elapsed.as_micros() as u64,
                "admission review"
            );
            json_response(StatusCode::OK, reviewed.body)
        }
        Err(bad) => {
            state.metrics.bad_request("/mutate", 400);
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
    let items = match preview::preview(&state.settings, text) {
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
            "no route for {} {}: landgate serves POST /mutate and POST /preview",
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
