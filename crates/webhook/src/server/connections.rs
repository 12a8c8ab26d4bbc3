//! Each listener's connections: the accept loop under its cap, the TLS
//! handshake, the per-connection deadlines hyper does not keep, and the
//! drain at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::ConnectionLimits;
use super::activity::{Activity, CountRequests, ReadTracker};
use crate::metrics::Metrics;

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

/// HTTP/1.1 and HTTP/2 as the limits say. The deadlines that hyper does not
/// keep apart (first request, header read, idle) are enforced per connection
/// in [`Connections::drive`].
pub(super) fn http_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
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
pub(super) struct Connections {
    pub(super) listener: Listener,
    /// `None`: plain HTTP (the admin port).
    pub(super) tls: Option<TlsAcceptor>,
    pub(super) app: Router,
    pub(super) http: auto::Builder<TokioExecutor>,
    pub(super) cap: u32,
    pub(super) limits: ConnectionLimits,
    pub(super) request_timeout: Duration,
    pub(super) metrics: Metrics,
}

impl Connections {
    pub(super) async fn accept_until_stopped(
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

/// Resolves once shutdown has begun. The watch guard is dropped inside, so
/// that futures awaiting this stay `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
