//! Connection limits on a real TLS listener on loopback, each set small:
//! clients that connect and say nothing, say it slowly, go idle, hold too
//! many connections or open too many HTTP/2 streams.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

#[path = "support/wire.rs"]
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use landgate_engine::settings::Settings;
use landgate_webhook::server::{BoundServer, ConnectionLimits, ServerConfig};
use landgate_webhook::tls;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

const CONFIGMAP_CREATE: &[u8] =
    include_bytes!("../../../tests/fixtures/admission/configmap-create.json");

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Limits that stay out of the way; each test tightens one or two.
fn relaxed() -> ConnectionLimits {
    ConnectionLimits {
        handshake_timeout: Duration::from_secs(30),
        first_request_timeout: Duration::from_secs(30),
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        http2_keepalive_interval: None,
        http2_keepalive_timeout: Duration::from_secs(30),
        max_concurrent_streams: 100,
        max_connections: 1000,
        admin_max_connections: 100,
    }
}

/// A server bound in process on port 0; shuts down when dropped.
struct Server {
    addr: SocketAddr,
    admin: SocketAddr,
    ca_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(limits: ConnectionLimits) -> Self {
        tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (cert_files, ca_pem) = tls::write_dev_certs(dir.path()).unwrap();
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            cert_files,
            max_body_bytes: 4 << 20,
            request_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(1),
            connections: limits,
        };
        let bound = BoundServer::bind(config, Settings::default())
            .await
            .unwrap();
        let (addr, admin) = (bound.local_addr(), bound.admin_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bound.serve(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin,
            ca_pem,
            stop: Some(stop),
            _dir: dir,
        }
    }

    /// What SIGTERM does.
    fn shut_down(&mut self) {
        drop(self.stop.take());
    }

    async fn tls(&self, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<TcpStream> {
        wire::connect(&wire::connector(&self.ca_pem, alpn), self.addr)
            .await
            .expect("TLS connection")
    }

    async fn metrics(&self) -> String {
        let mut tcp = TcpStream::connect(self.admin).await.unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        tcp.read_to_string(&mut text).await.unwrap();
        text
    }

    /// Waits (at most 3s) for the metrics to show `line`.
    async fn assert_metric(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let text = self.metrics().await;
            if text.contains(line) {
                return;
            }
            assert!(Instant::now() < deadline, "missing {line:?} in:\n{text}");
            tokio::time::sleep(ms(50)).await;
        }
    }
}

/// How long the server took to close `stream`, counted from `since`;
/// panics if it is still open after 5s.
async fn closed_after<S: AsyncRead + Unpin>(
    what: &str,
    stream: &mut S,
    since: Instant,
) -> Duration {
    wire::closed_within(stream, Duration::from_secs(5))
        .await
        .unwrap_or_else(|()| panic!("{what}: still open after 5s"));
    since.elapsed()
}

/// `elapsed` is past `deadline`, by no more than a graceful close takes, or
/// the server's one-second grace before it drops a peer that is midway
/// through a request head.
fn assert_closed_at(what: &str, elapsed: Duration, deadline: Duration) {
    assert!(
        elapsed >= deadline - ms(50) && elapsed < deadline + ms(2000),
        "{what}: closed after {elapsed:?}, deadline {deadline:?}"
    );
}

async fn http1_review<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> u16 {
    stream
        .write_all(&wire::http1_post("/mutate", CONFIGMAP_CREATE))
        .await
        .unwrap();
    let (status, body) = wire::http1_response(stream).await.expect("a response");
    assert!(
        body.windows(14).any(|w| w == b"\"allowed\":true"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    status
}

/// Sends the preface and one complete review on stream 1; returns its status
/// once the response has ended.
async fn h2_review<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> u16 {
    wire::write_frames(
        stream,
        &[
            wire::post_headers(1, "/mutate", false),
            wire::data(1, CONFIGMAP_CREATE, true),
        ],
    )
    .await
    .unwrap();
    let mut status = None;
    while let Some(frame) = wire::next_frame(stream).await.unwrap() {
        if frame.stream != 1 {
            continue;
        }
        if frame.kind == wire::HEADERS {
            status = frame.status();
        }
        if matches!(frame.kind, wire::HEADERS | wire::DATA) && frame.flags & wire::END_STREAM != 0 {
            return status.expect("a :status");
        }
        assert_ne!(frame.kind, wire::RST_STREAM, "{frame:?}");
    }
    panic!("connection closed before the response ended");
}

/// Reads frames until the server closes; returns the GOAWAY it sent, if any.
async fn h2_until_closed<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Option<wire::Frame> {
    let mut goaway = None;
    let read = async {
        while let Ok(Some(frame)) = wire::next_frame(stream).await {
            if frame.kind == wire::GOAWAY {
                goaway = Some(frame);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("HTTP/2 connection still open after 5s");
    goaway
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_no_request_are_closed_after_the_first_request_timeout() {
    let server = Server::start(ConnectionLimits {
        first_request_timeout: ms(300),
        ..relaxed()
    })
    .await;
    // TLS completes, then nothing: the protocol sniff (HTTP/2 preface or
    // not) waits for bytes with no timer of hyper's own.
    let mut silent = server.tls(&[]).await;
    let silent_since = Instant::now();
    // Half a request line, then nothing: a slowloris first request.
    let mut partial = server.tls(&[b"http/1.1"]).await;
    partial
        .write_all(b"POST /mutate HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let partial_since = Instant::now();
    // The admin port, plain TCP, nothing sent.
    let mut admin = TcpStream::connect(server.admin).await.unwrap();
    let admin_since = Instant::now();

    let (silent, partial, admin) = tokio::join!(
        closed_after("silent TLS connection", &mut silent, silent_since),
        closed_after("partial request line", &mut partial, partial_since),
        closed_after("silent admin connection", &mut admin, admin_since),
    );
    assert_closed_at("silent TLS connection", silent, ms(300));
    assert_closed_at("partial request line", partial, ms(300));
    assert_closed_at("silent admin connection", admin, ms(300));
    server
        .assert_metric(r#"landgate_connections_closed_total{listener="admission",reason="first_request_timeout"} 2"#)
        .await;
    server
        .assert_metric(r#"landgate_connections_closed_total{listener="admin",reason="first_request_timeout"} 1"#)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connection_without_a_handshake_is_closed_after_the_handshake_timeout() {
    let server = Server::start(ConnectionLimits {
        handshake_timeout: ms(300),
        ..relaxed()
    })
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let since = Instant::now();
    let elapsed = closed_after("TCP connection without ClientHello", &mut tcp, since).await;
    assert_closed_at("TCP connection without ClientHello", elapsed, ms(300));
    server
        .assert_metric(r#"landgate_connections_closed_total{listener="admission",reason="handshake_timeout"} 1"#)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connection_that_opens_no_stream_gets_goaway_after_the_first_request_timeout() {
    let server = Server::start(ConnectionLimits {
        first_request_timeout: ms(300),
        ..relaxed()
    })
    .await;
    let mut h2 = server.tls(&[b"h2"]).await;
    let since = Instant::now();
    h2.write_all(&wire::preface()).await.unwrap();
    let goaway = h2_until_closed(&mut h2).await;
    assert_closed_at(
        "HTTP/2 connection without streams",
        since.elapsed(),
        ms(300),
    );
    let goaway = goaway.expect("a GOAWAY before the close");
    assert_eq!(goaway.error_code(), Some(0), "GOAWAY NO_ERROR: {goaway:?}");
    server
        .assert_metric(r#"landgate_connections_closed_total{listener="admission",reason="first_request_timeout"} 1"#)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(ConnectionLimits {
        header_read_timeout: ms(300),
        idle_timeout: ms(800),
        ..relaxed()
    })
    .await;
    let mut conn = server.tls(&[b"http/1.1"]).await;
    assert_eq!(http1_review(&mut conn).await, 200);
    // Waiting for the next request is idleness, not a slow header: past the
    // header timeout, short of the idle one, the connection still serves.
    tokio::time::sleep(ms(500)).await;
    assert_eq!(http1_review(&mut conn).await, 200);
    let since = Instant::now();
    let elapsed = closed_after("idle HTTP/1.1 connection", &mut conn, since).await;
    assert_closed_at("idle HTTP/1.1 connection", elapsed, ms(800));
    server
        .assert_metric(
            r#"landgate_connections_closed_total{listener="admission",reason="idle_timeout"} 1"#,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connection_gets_goaway_after_the_idle_timeout() {
    let server = Server::start(ConnectionLimits {
        idle_timeout: ms(500),
        ..relaxed()
    })
    .await;
    let mut h2 = server.tls(&[b"h2"]).await;
    h2.write_all(&wire::preface()).await.unwrap();
    assert_eq!(h2_review(&mut h2).await, 200);
    let since = Instant::now();
    let goaway = h2_until_closed(&mut h2).await;
    assert_closed_at("idle HTTP/2 connection", since.elapsed(), ms(500));
    let goaway = goaway.expect("a GOAWAY before the close");
    assert_eq!(goaway.error_code(), Some(0), "GOAWAY NO_ERROR: {goaway:?}");
    server
        .assert_metric(
            r#"landgate_connections_closed_total{listener="admission",reason="idle_timeout"} 1"#,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http1_headers_on_a_kept_alive_connection_are_cut_at_the_header_read_timeout() {
    let server = Server::start(ConnectionLimits {
        header_read_timeout: ms(300),
        ..relaxed()
    })
    .await;
    let conn = server.tls(&[b"http/1.1"]).await;
    let (mut reader, mut writer) = tokio::io::split(conn);
    writer
        .write_all(&wire::http1_post("/mutate", CONFIGMAP_CREATE))
        .await
        .unwrap();
    let (status, _) = wire::http1_response(&mut reader).await.unwrap();
    assert_eq!(status, 200);
    // The next request's head, one byte every 50ms (4s in all).
    let since = Instant::now();
    let trickle = tokio::spawn(async move {
        for byte in b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" {
            if writer.write_all(&[*byte]).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(ms(50)).await;
        }
    });
    let elapsed = closed_after("trickled HTTP/1.1 headers", &mut reader, since).await;
    trickle.abort();
    assert_closed_at("trickled HTTP/1.1 headers", elapsed, ms(300));
    server
        .assert_metric(
            r#"landgate_connections_closed_total{listener="admission",reason="header_timeout"} 1"#,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_while_open_ones_are_served() {
    let server = Server::start(ConnectionLimits {
        max_connections: 4,
        ..relaxed()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(server.tls(&[b"http/1.1"]).await);
    }
    let connector = wire::connector(&server.ca_pem, &[b"http/1.1"]);
    let started = Instant::now();
    let refused = wire::connect(&connector, server.addr).await;
    assert!(
        refused.is_err(),
        "a fifth connection completed its handshake"
    );
    assert!(
        started.elapsed() < ms(500),
        "refusal took {:?}",
        started.elapsed()
    );
    // The connections under the cap are still served.
    assert_eq!(http1_review(&mut held[0]).await, 200);
    server
        .assert_metric(r#"landgate_connections_refused_total{listener="admission"} 1"#)
        .await;
    server
        .assert_metric(r#"landgate_connections_open{listener="admission"} 4"#)
        .await;
    // A closed connection frees its place.
    drop(held.pop());
    server
        .assert_metric(r#"landgate_connections_open{listener="admission"} 3"#)
        .await;
    let mut again = wire::connect(&connector, server.addr)
        .await
        .expect("a connection once one closed");
    assert_eq!(http1_review(&mut again).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_beyond_the_limit_are_refused_and_the_others_served() {
    let server = Server::start(ConnectionLimits {
        max_concurrent_streams: 2,
        ..relaxed()
    })
    .await;
    let mut h2 = server.tls(&[b"h2"]).await;
    h2.write_all(&wire::preface()).await.unwrap();
    let settings = wire::next_frame(&mut h2).await.unwrap().expect("SETTINGS");
    assert_eq!(settings.kind, wire::SETTINGS);
    assert!(
        settings
            .settings()
            .contains(&(wire::SETTINGS_MAX_CONCURRENT_STREAMS, 2)),
        "{:?}",
        settings.settings()
    );
    // Three requests whose bodies have not arrived yet: the third is one
    // more than the peer allowed.
    wire::write_frames(
        &mut h2,
        &[
            wire::post_headers(1, "/mutate", false),
            wire::post_headers(3, "/mutate", false),
            wire::post_headers(5, "/mutate", false),
        ],
    )
    .await
    .unwrap();
    let reset = loop {
        let frame = wire::next_frame(&mut h2)
            .await
            .unwrap()
            .expect("a RST_STREAM");
        if frame.kind == wire::RST_STREAM {
            break frame;
        }
    };
    assert_eq!(reset.stream, 5, "{reset:?}");
    assert_eq!(reset.error_code(), Some(wire::REFUSED_STREAM), "{reset:?}");
    // The two streams within the limit complete.
    wire::write_frames(
        &mut h2,
        &[
            wire::data(1, CONFIGMAP_CREATE, true),
            wire::data(3, CONFIGMAP_CREATE, true),
        ],
    )
    .await
    .unwrap();
    let mut statuses = std::collections::BTreeMap::new();
    let mut ended = std::collections::BTreeSet::new();
    while ended.len() < 2 {
        let frame = wire::next_frame(&mut h2)
            .await
            .unwrap()
            .expect("responses before close");
        assert_ne!(frame.kind, wire::RST_STREAM, "{frame:?}");
        assert_ne!(frame.kind, wire::GOAWAY, "{frame:?}");
        if frame.kind == wire::HEADERS {
            statuses.insert(frame.stream, frame.status());
        }
        if matches!(frame.kind, wire::HEADERS | wire::DATA) && frame.flags & wire::END_STREAM != 0 {
            ended.insert(frame.stream);
        }
    }
    assert_eq!(
        statuses,
        [(1, Some(200)), (3, Some(200))].into_iter().collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_honours_the_stream_limit_queues_and_is_served_on_one_connection() {
    let server = Server::start(ConnectionLimits {
        max_concurrent_streams: 2,
        ..relaxed()
    })
    .await;
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", server.addr)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/mutate", server.addr.port());
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..16 {
        requests.spawn(client.post(&url).body(CONFIGMAP_CREATE).send());
    }
    while let Some(response) = requests.join_next().await {
        assert_eq!(response.unwrap().unwrap().status(), 200);
    }
    server
        .assert_metric(r#"landgate_connections_open{listener="admission"} 1"#)
        .await;
    server
        .assert_metric(r#"landgate_connections_refused_total{listener="admission"} 0"#)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_http1_connections_in_use_are_answered_connection_close_not_cut() {
    let mut server = Server::start(relaxed()).await;
    let mut busy = server.tls(&[b"http/1.1"]).await;
    let mut quiet = server.tls(&[b"http/1.1"]).await;
    assert_eq!(http1_review(&mut busy).await, 200);
    assert_eq!(http1_review(&mut quiet).await, 200);
    server.shut_down();
    let since = Instant::now();
    // A client keeps using its pooled connection after the endpoint is
    // gone (conntrack): its next request is answered, and ends the
    // connection, rather than the connection closing under it.
    tokio::time::sleep(ms(300)).await;
    busy.write_all(&wire::http1_post("/mutate", CONFIGMAP_CREATE))
        .await
        .unwrap();
    let (status, head, _) = wire::http1_response_with_head(&mut busy)
        .await
        .expect("an answer, not a closed connection");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    wire::closed_within(&mut busy, Duration::from_secs(1))
        .await
        .expect("closed after the answer");
    // One nobody uses is closed once it has stayed quiet a while (2s).
    let elapsed = closed_after("quiet HTTP/1.1 connection", &mut quiet, since).await;
    assert!(
        elapsed >= ms(1900) && elapsed < ms(3500),
        "quiet connection closed after {elapsed:?}"
    );
}
