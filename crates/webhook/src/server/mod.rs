//! Transport: the HTTPS admission listener (rustls, HTTP/2 and HTTP/1.1), the
//! plain admin listener (health, readiness, metrics), connection limits and
//! graceful shutdown. Handlers only extract and answer; decisions live in
//! [`crate::admission`] and [`crate::preview`].
//!
//! - `mod.rs`: configuration, bind (certificate checked, both listeners
//!   bound, addresses known), then serve;
//! - `routes.rs`: the two routers and their handlers;
//! - `connections.rs`: accept loops, connection caps, deadlines, shutdown;
//! - `activity.rs`: what one connection is doing, as its deadlines read it;
//! - `open_files.rs`: the connection cap fitted to RLIMIT_NOFILE.

mod activity;
mod connections;
mod open_files;
mod routes;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::images::ImageLookups;
use crate::metrics::Metrics;
use crate::namespaces::NamespaceCache;
use crate::tls::{self, CertFiles, ReloadingCertResolver, TlsError};
use landgate_engine::settings::Settings;

pub use connections::{CloseReason, Listener};
pub use routes::{AppState, NamespaceAnnotations, Readiness, admin_router, admission_router};

use connections::{Connections, http_builder};
use open_files::{fit_to_open_files_limit, open_files_soft_limit};

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
    /// Readiness waits for its first sync.
    namespaces: Option<NamespaceCache>,
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
            namespaces: None,
        })
    }

    /// Reads namespace annotations from `cache`, whose watch must already
    /// be running; the webhook is not ready until it has synced.
    pub fn with_namespaces(mut self, cache: NamespaceCache) -> Self {
        self.state.namespace_annotations = cache.lookup();
        self.namespaces = Some(cache);
        self
    }

    /// Looks up the images of the pods it admits (and previews).
    /// Reads the pods of `kubectl exec` / `attach` through `pods`.
    pub fn with_pods(mut self, pods: crate::connect::PodReader) -> Self {
        self.state.pods = Some(pods);
        self
    }

    /// Publishes Events about refused and unsandboxed pods through `events`.
    pub fn with_events(mut self, events: crate::events::Events) -> Self {
        events.register_metrics(&mut self.registry);
        self.state.events = Some(events);
        self
    }

    pub fn with_images(mut self, images: ImageLookups) -> Self {
        images.register_metrics(&mut self.registry);
        self.state.images = Some(images);
        self
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
            namespaces,
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
        match namespaces {
            None => readiness.set(true),
            Some(cache) => {
                // Reviews are answered meanwhile (a namespace not cached yet
                // is refused), but endpoints send none before the sync.
                let readiness = readiness.clone();
                let stopping = stop_rx.clone();
                tokio::spawn(async move {
                    cache.synced().await;
                    // Not after shutdown has begun: that readiness is final.
                    if !*stopping.borrow() {
                        tracing::info!("namespace cache synced: ready");
                        readiness.set(true);
                    }
                });
            }
        }
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
