//! What one connection is doing, noted by the service that answers its
//! requests and the stream that reads its bytes, and read by the watchdog
//! that keeps its deadlines.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Version, header};
use axum::response::Response;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{CloseReason, ConnectionLimits};

/// Marks "not reading a request head" in [`Activity::head_since`].
const NOT_READING: u64 = u64::MAX;

/// What one connection is doing: written by its requests ([`CountRequests`])
/// and its reads ([`ReadTracker`]), read by the watchdog in
/// [`super::connections::Connections::drive`]. Times are milliseconds since `opened`.
pub(super) struct Activity {
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
    pub(super) changed: Notify,
}

impl Activity {
    pub(super) fn new() -> Self {
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

    pub(super) fn in_flight(&self) -> usize {
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
    pub(super) fn draining_http1(&self) -> bool {
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
    pub(super) fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, CloseReason)> {
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
pub(super) struct CountRequests {
    pub(super) app: Router,
    pub(super) activity: Arc<Activity>,
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
pub(super) struct ReadTracker<IO> {
    pub(super) io: IO,
    pub(super) activity: Arc<Activity>,
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
