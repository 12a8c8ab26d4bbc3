//! Transport: the HTTPS admission listener (rustls, HTTP/2 and HTTP/1.1), the
//! plain admin listener (health, readiness, metrics), connection limits and
//! graceful shutdown. Handlers only extract and answer; decisions live in
//! [`crate::admission`] and [`crate::preview`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admission::{self, ReviewOutcome};
use crate::metrics::{self, Metrics};
use crate::preview::{self, OutputFormat, PreviewError};
use landgate_engine::settings::Settings;
use crate::tls::{self, CertFiles, ReloadingCertResolver, TlsError};

/// How the server listens and what it tolerates.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub cert_files: CertFiles,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    pub connections: ConnectionLimits,
}

/// What a connection may hold, and for how long. The defaults, and why they
/// are what they are, sit with the flags in [`crate::cli::LimitArgs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From accept to the end of the TLS handshake.
    pub handshake_timeout: Duration,
    /// From the end of the handshake (from accept, on the admin port) to the
    /// complete headers of the first request.
    pub first_request_timeout: Duration,
    /// HTTP/1.1, later requests: from their first byte to their last header.
    pub header_read_timeout: Duration,
    /// No request in flight for this long: the connection is closed.
    pub idle_timeout: Duration,
    /// HTTP/2: PING a peer nothing was read from for this long; `None`: never.
    pub http2_keepalive_interval: Option<Duration>,
    /// HTTP/2: a PING unanswered for this long closes the connection.
    pub http2_keepalive_timeout: Duration,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: u32,
    /// Connections open at once on the admission port.
    pub max_connections: u32,
    /// Connections open at once on the admin port.
    pub admin_max_connections: u32,
}

/// A graceful close (HTTP/2 GOAWAY, then a PING round trip) takes
/// milliseconds with a live peer; one that has not finished after this is
/// dropped, so that a peer that stops reading cannot keep its descriptor.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// At shutdown, how long a kept-alive HTTP/1.1 connection may stay quiet
/// before it is closed. Closing an idle HTTP/1.1 connection can cross a
/// request the client is writing on it (Go does not retry a POST it has
/// written), so a connection still in use is answered `Connection: close`
/// instead; one that stays quiet this long is not in use.
const HTTP1_DRAIN_LINGER: Duration = Duration::from_secs(2);

/// File descriptors kept free beyond the two connection caps: listeners,
/// certificate files read at handshakes, the Kubernetes API client, stdio,
/// and each connection refused at the cap (accepted, then closed).
const FD_RESERVE: u64 = 64;

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

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Admission,
    Admin,
}

impl Listener {
    pub const ALL: [Self; 2] = [Self::Admission, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admission => "admission",
            Self::Admin => "admin",
        }
    }

    fn cap_flag(self) -> &'static str {
        match self {
            Self::Admission => "--max-connections (LANDGATE_MAX_CONNECTIONS)",
            Self::Admin => "--admin-max-connections (LANDGATE_ADMIN_MAX_CONNECTIONS)",
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it, or broke the protocol.
    Peer,
    /// Drained at shutdown.
    Shutdown,
    HandshakeFailed,
    HandshakeTimeout,
    FirstRequestTimeout,
    HeaderTimeout,
    IdleTimeout,
}

impl CloseReason {
    pub const ALL: [Self; 7] = [
        Self::Peer,
        Self::Shutdown,
        Self::HandshakeFailed,
        Self::HandshakeTimeout,
        Self::FirstRequestTimeout,
        Self::HeaderTimeout,
        Self::IdleTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Shutdown => "shutdown",
            Self::HandshakeFailed => "handshake_failed",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::FirstRequestTimeout => "first_request_timeout",
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
        }
    }
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

/// Binds both listeners, then serves them until `shutdown` resolves and
/// in-flight requests have drained (for at most `shutdown_grace`).
pub async fn serve(
    config: ServerConfig,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    BoundServer::bind(config, settings)
        .await?
        .serve(shutdown)
        .await
}

/// Both listeners bound and the certificate checked, not serving yet: the
/// addresses are known (port 0 included) before the first connection.
pub struct BoundServer {
    listener: TcpListener,
    admin: TcpListener,
    local_addr: SocketAddr,
    admin_addr: SocketAddr,
    acceptor: TlsAcceptor,
    state: AppState,
    registry: Registry,
    request_timeout: Duration,
    shutdown_grace: Duration,
    limits: ConnectionLimits,
}

impl BoundServer {
    /// Loads the serving certificate (failing if it is unusable) and binds
    /// both listeners.
    pub async fn bind(config: ServerConfig, settings: Settings) -> Result<Self, ServeError> {
        let ServerConfig {
            listen,
            admin_listen,
            cert_files,
            max_body_bytes,
            request_timeout,
            shutdown_grace,
            connections,
        } = config;
        let (metrics, registry) = Metrics::new();
        let reload_metrics = metrics.clone();
        let resolver = Arc::new(ReloadingCertResolver::new(cert_files, move || {
            reload_metrics.certificate_reloaded()
        })?);
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(resolver)?));
        let (admin, admin_addr) = bind_listener("--admin-listen", admin_listen).await?;
        let (listener, local_addr) = bind_listener("--listen", listen).await?;
        let limits = fit_to_open_files_limit(connections, open_files_soft_limit());
        tracing::info!(
            listen = %local_addr,
            admin = %admin_addr,
            max_connections = limits.max_connections,
            "serving admission reviews on https://{local_addr}/mutate"
        );
        Ok(Self {
            listener,
            admin,
            local_addr,
            admin_addr,
            acceptor,
            state: AppState::new(settings, metrics, max_body_bytes),
            registry,
            request_timeout,
            shutdown_grace,
            limits,
        })
    }

    /// The HTTPS address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin address actually bound.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves both listeners until `shutdown` resolves, then stops accepting
    /// and drains in-flight requests for at most the shutdown grace.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            admin,
            local_addr: _,
            admin_addr: _,
            acceptor,
            state,
            registry,
            request_timeout,
            shutdown_grace,
            limits,
        } = self;
        let readiness = Readiness::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let readiness_on_stop = readiness.clone();
        tokio::spawn(async move {
            shutdown.await;
            readiness_on_stop.set(false);
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stop_tx.send(true);
        });

        let metrics = state.metrics.clone();
        let admin_connections = Arc::new(Connections {
            listener: Listener::Admin,
            tls: None,
            app: admin_router(readiness.clone(), Arc::new(registry)),
            http: http_builder(&limits),
            cap: limits.admin_max_connections,
            limits,
            request_timeout,
            metrics: metrics.clone(),
        });
        let admin_task = tokio::spawn(admin_connections.accept_until_stopped(
            admin,
            stop_rx.clone(),
            shutdown_grace,
        ));
        let admission_connections = Arc::new(Connections {
            listener: Listener::Admission,
            tls: Some(acceptor),
            app: admission_router(state, request_timeout),
            http: http_builder(&limits),
            cap: limits.max_connections,
            limits,
            request_timeout,
            metrics,
        });
        readiness.set(true);
        admission_connections
            .accept_until_stopped(listener, stop_rx, shutdown_grace)
            .await;
        admin_task
            .await
            .map_err(|join| ServeError::Admin(io::Error::other(join)))
    }
}

async fn bind_listener(
    flag: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), ServeError> {
    let bind_error = |error| ServeError::Bind { flag, addr, error };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// Lowers the admission connection cap when the open-file limit cannot hold
/// both caps: past that limit accept() fails with EMFILE, and so does every
/// other file this process opens (certificate reloads, the API client),
/// while the cap refuses only the connections beyond it.
fn fit_to_open_files_limit(
    mut limits: ConnectionLimits,
    soft_limit: Option<u64>,
) -> ConnectionLimits {
    let Some(soft_limit) = soft_limit else {
        return limits;
    };
    let others = u64::from(limits.admin_max_connections) + FD_RESERVE;
    if u64::from(limits.max_connections) + others <= soft_limit {
        return limits;
    }
    let fitted = u32::try_from(soft_limit.saturating_sub(others).max(1))
        .unwrap_or(u32::MAX)
        .min(limits.max_connections);
    tracing::warn!(
        open_files_limit = soft_limit,
        max_connections = limits.max_connections,
        admin_max_connections = limits.admin_max_connections,
        lowered_to = fitted,
        "the open-file limit (RLIMIT_NOFILE) cannot hold --max-connections plus --admin-max-connections plus {FD_RESERVE} spare descriptors: \
         lowering --max-connections; raise the limit of the container runtime or lower LANDGATE_MAX_CONNECTIONS"
    );
    limits.max_connections = fitted;
    limits
}

/// The soft RLIMIT_NOFILE; `None` if unlimited or unknown (not Linux).
fn open_files_soft_limit() -> Option<u64> {
    parse_open_files_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// Reads the soft limit from the "Max open files" line of /proc/PID/limits.
fn parse_open_files_limit(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// HTTP/1.1 and HTTP/2 as the limits say. The deadlines that hyper does not
/// keep apart (first request, header read, idle) are enforced per connection
/// in [`Connections::drive`].
fn http_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper also runs this timer while a kept-alive connection waits for
        // its next request, which would cap the idle timeout at the header
        // timeout; and it does not run while the first bytes are awaited
        // (the HTTP/2 preface sniff). The watchdog covers both.
        .header_read_timeout(None::<Duration>);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_timeout);
    builder
}

/// One listener's connections and what they share.
struct Connections {
    listener: Listener,
    /// `None`: plain HTTP (the admin port).
    tls: Option<TlsAcceptor>,
    app: Router,
    http: auto::Builder<TokioExecutor>,
    cap: u32,
    limits: ConnectionLimits,
    request_timeout: Duration,
    metrics: Metrics,
}

impl Connections {
    async fn accept_until_stopped(
        self: Arc<Self>,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
        grace: Duration,
    ) {
        let permits = Arc::new(Semaphore::new(self.cap as usize));
        let mut at_cap = false;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(conn) => conn,
                        Err(err) => {
                            // Usually EMFILE: back off instead of spinning.
                            tracing::warn!(listener = self.listener.as_str(), error = %err, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    // Over the cap, accept and close at once rather than stop
                    // accepting: a client left in the kernel's backlog waits
                    // out its own timeout (the API server, the webhook's
                    // timeoutSeconds); a refused one knows in a round trip.
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        self.metrics.connection_refused(self.listener);
                        if !at_cap {
                            at_cap = true;
                            tracing::warn!(
                                listener = self.listener.as_str(),
                                cap = self.cap,
                                "connection cap reached: refusing new connections until some close \
                                 (landgate_connections_refused_total); raise {} if these clients are legitimate",
                                self.listener.cap_flag()
                            );
                        }
                        drop(tcp);
                        continue;
                    };
                    at_cap = false;
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(self.clone().serve_connection(tcp, peer, stop.clone(), permit));
                }
                () = stopped(&mut stop) => break,
            }
        }
        drop(listener);
        // Every permit returned means every connection closed.
        tokio::select! {
            _ = permits.acquire_many(self.cap) => {
                tracing::info!(listener = self.listener.as_str(), "all connections drained");
            }
            () = tokio::time::sleep(grace) => {
                tracing::warn!(
                    listener = self.listener.as_str(),
                    grace_seconds = grace.as_secs(),
                    "shutdown grace period over; closing remaining connections"
                );
            }
        }
    }

    /// One connection, from accept to close; `_permit` holds its place under
    /// the cap.
    async fn serve_connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
        _permit: OwnedSemaphorePermit,
    ) {
        self.metrics.connection_opened(self.listener);
        let reason = match &self.tls {
            None => self.drive(tcp, peer, stop).await,
            Some(acceptor) => {
                match tokio::time::timeout(self.limits.handshake_timeout, acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(tls)) => self.drive(tls, peer, stop).await,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, error = %err, "TLS handshake failed");
                        CloseReason::HandshakeFailed
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        CloseReason::HandshakeTimeout
                    }
                }
            }
        };
        self.metrics.connection_closed(self.listener, reason);
    }

    /// Serves HTTP on `io` and closes it when a deadline passes: first
    /// request, header read (HTTP/1.1), idle. hyper-util has no idle timeout
    /// for HTTP/2 and no deadline before the first bytes, so a watchdog here
    /// reads the connection's [`Activity`] and shuts it down gracefully
    /// (GOAWAY, or closing an idle HTTP/1.1 connection), then drops it if it
    /// has not closed within [`CLOSE_GRACE`].
    async fn drive<IO>(
        &self,
        io: IO,
        peer: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) -> CloseReason
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(ReadTracker {
            io,
            activity: activity.clone(),
        });
        let service = CountRequests {
            app: self.app.clone(),
            activity: activity.clone(),
        };
        let connection = self.http.serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let mut closing: Option<Closing> = None;
        let mut stopping = false;
        // HTTP/1.1 at shutdown: when to close if no request comes first.
        let mut drain_until: Option<Instant> = None;
        loop {
            if let Some(until) = drain_until
                && Instant::now() >= until
            {
                drain_until = None;
                connection.as_mut().graceful_shutdown();
            }
            let deadline = match &closing {
                Some(closing) => Some(closing.until),
                None => {
                    let watchdog = activity.deadline(&self.limits).map(|(at, _)| at);
                    match (watchdog, drain_until) {
                        (Some(at), Some(until)) => Some(at.min(until)),
                        (at, until) => at.or(until),
                    }
                }
            };
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(err) = ended {
                        tracing::debug!(%peer, error = %err, "connection closed with error");
                    }
                    return match closing {
                        Some(closing) => closing.reason,
                        None if stopping => CloseReason::Shutdown,
                        None => CloseReason::Peer,
                    };
                }
                () = activity.changed.notified() => {}
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let now = Instant::now();
                    if let Some(closing) = &mut closing {
                        if activity.in_flight() > 0 && !closing.extended {
                            // A request that arrived before the client saw
                            // GOAWAY: its handler answers within
                            // --request-timeout.
                            closing.extended = true;
                            closing.until = now + self.request_timeout;
                        } else {
                            tracing::debug!(%peer, reason = closing.reason.as_str(), "connection did not close in time; dropping it");
                            return closing.reason;
                        }
                    } else if let Some((at, reason)) = activity.deadline(&self.limits)
                        && at <= now
                    {
                        tracing::debug!(%peer, reason = reason.as_str(), "closing connection");
                        connection.as_mut().graceful_shutdown();
                        closing = Some(Closing { reason, until: now + CLOSE_GRACE, extended: false });
                    }
                }
                () = stopped(&mut stop), if !stopping => {
                    stopping = true;
                    if closing.is_none() {
                        if activity.draining_http1() {
                            drain_until = Some(Instant::now() + HTTP1_DRAIN_LINGER);
                        } else {
                            // HTTP/2: GOAWAY, which clients retry around;
                            // no request yet: nothing to cross.
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        }
    }
}

/// A connection being closed for a deadline.
struct Closing {
    reason: CloseReason,
    /// When it is dropped if it has not closed.
    until: Instant,
    /// Whether `until` was pushed back once for a request in flight.
    extended: bool,
}

/// Marks "not reading a request head" in [`Activity::head_since`].
const NOT_READING: u64 = u64::MAX;

/// What one connection is doing: written by its requests ([`CountRequests`])
/// and its reads ([`ReadTracker`]), read by the watchdog in
/// [`Connections::drive`]. Times are milliseconds since `opened`.
struct Activity {
    opened: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    http1: AtomicBool,
    /// When the last request ended.
    idle_since: AtomicU64,
    /// HTTP/1.1: when the first byte after the last request arrived (the
    /// next request's head), or [`NOT_READING`].
    head_since: AtomicU64,
    /// Shutting down: HTTP/1.1 answers carry `Connection: close`.
    draining: AtomicBool,
    /// Woken when the watchdog's deadline may have moved earlier.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            http1: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NOT_READING),
            draining: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NOT_READING - 1)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn request_started(self: &Arc<Self>, version: Version) -> InFlight {
        if version < Version::HTTP_2 {
            self.http1.store(true, Ordering::SeqCst);
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn request_ended(&self) {
        // Stored before the count drops, so that a watchdog that sees no
        // request in flight also sees when the last one ended.
        self.idle_since.store(self.now(), Ordering::SeqCst);
        self.head_since.store(NOT_READING, Ordering::SeqCst);
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.changed.notify_one();
        }
    }

    /// At shutdown: for an HTTP/1.1 connection, marks it draining and says
    /// so; `false` for HTTP/2 or before the first request.
    fn draining_http1(&self) -> bool {
        let http1 = self.http1.load(Ordering::SeqCst);
        if http1 {
            self.draining.store(true, Ordering::SeqCst);
        }
        http1
    }

    fn bytes_read(&self) {
        // Only HTTP/1.1 heads are timed here: HTTP/2 reads PINGs and
        // WINDOW_UPDATEs between requests, and hyper gives a stream to the
        // service only once its headers are complete.
        if self.http1.load(Ordering::Relaxed)
            && self.head_since.load(Ordering::Relaxed) == NOT_READING
            && self.in_flight.load(Ordering::SeqCst) == 0
            && self
                .head_since
                .compare_exchange(NOT_READING, self.now(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// When the connection must close and why, or `None` while a request is
    /// in flight.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, CloseReason)> {
        if self.in_flight() > 0 {
            return None;
        }
        if self.requests.load(Ordering::SeqCst) == 0 {
            return Some((
                self.opened + limits.first_request_timeout,
                CloseReason::FirstRequestTimeout,
            ));
        }
        let after =
            |millis: u64, timeout: Duration| self.opened + Duration::from_millis(millis) + timeout;
        let head_since = self.head_since.load(Ordering::SeqCst);
        if head_since != NOT_READING {
            return Some((
                after(head_since, limits.header_read_timeout),
                CloseReason::HeaderTimeout,
            ));
        }
        Some((
            after(self.idle_since.load(Ordering::SeqCst), limits.idle_timeout),
            CloseReason::IdleTimeout,
        ))
    }
}

/// A request in flight on a connection, until its response is ready (or the
/// client gives up on it).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// The router, counting the requests in flight on its connection.
#[derive(Clone)]
struct CountRequests {
    app: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for CountRequests {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let http1 = request.version() < Version::HTTP_2;
        let in_flight = self.activity.request_started(request.version());
        let activity = self.activity.clone();
        let response = tower::ServiceExt::oneshot(self.app.clone(), request);
        Box::pin(async move {
            let response = response.await.map(|mut response| {
                if http1 && activity.draining.load(Ordering::SeqCst) {
                    // The client closes after this answer, instead of us
                    // closing under its next request (hyper honours it).
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                response
            });
            drop(in_flight);
            response
        })
    }
}

/// The connection's byte stream, noting reads in its [`Activity`].
struct ReadTracker<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for ReadTracker<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ReadTracker<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Resolves once shutdown has begun. The watch guard is dropped inside, so
/// that futures awaiting this stay `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: u32, admin_max_connections: u32) -> ConnectionLimits {
        ConnectionLimits {
            handshake_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 100,
            max_connections,
            admin_max_connections,
        }
    }

    #[test]
    fn reads_the_soft_open_files_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63711                63711                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), None);
        assert_eq!(parse_open_files_limit(""), None);
    }

    #[test]
    fn connection_cap_fits_under_the_open_files_limit() {
        // containerd 2 leaves containers at the systemd default: soft 1024.
        let fitted = fit_to_open_files_limit(limits(1024, 64), Some(1024));
        assert_eq!(fitted.max_connections, 1024 - 64 - FD_RESERVE as u32);
        assert_eq!(fitted.admin_max_connections, 64);
        // Room enough, or no limit known: unchanged.
        assert_eq!(
            fit_to_open_files_limit(limits(1024, 64), Some(1_048_576)),
            limits(1024, 64)
        );
        assert_eq!(
            fit_to_open_files_limit(limits(1024, 64), None),
            limits(1024, 64)
        );
        // Never below one connection.
        assert_eq!(
            fit_to_open_files_limit(limits(1024, 64), Some(10)).max_connections,
            1
        );
    }
}
