//! The HTTPS transport, spoken to over TLS by clients that trust only a
//! throw-away CA: first the server bound in process on port 0, then the real
//! `landgate-webhook serve` binary for what only the binary does (flags,
//! SIGTERM, exit status). What the routes answer: tests/router.rs;
//! connection limits one by one: tests/limits.rs.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

#[path = "support/webhook.rs"]
mod webhook;
#[path = "support/wire.rs"]
mod wire;

use std::time::Duration;

use landgate_engine::settings::Settings;
use landgate_webhook::server::{BoundServer, ServeError};
use landgate_webhook::tls::{CertFiles, dev_names};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;
use webhook::Webhook;

const POD_CREATE: &str = include_str!("../../../tests/fixtures/admission/pod-create.json");
const CONFIGMAP_CREATE: &str =
    include_str!("../../../tests/fixtures/admission/configmap-create.json");

/// A ConfigMap review (allowed, no patch) on a new connection of `client`.
async fn send_review(webhook: &Webhook, client: &reqwest::Client) -> reqwest::Response {
    client
        .post(webhook.url("/mutate"))
        .body(CONFIGMAP_CREATE)
        .send()
        .await
        .unwrap()
}

fn served_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info")
        .to_vec()
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

// === in process ===

#[tokio::test]
async fn bind_checks_the_certificate_and_names_a_taken_address() {
    let webhook = Webhook::in_process(|_| {}).await;
    assert_ne!(webhook.addr.port(), 0);
    assert_ne!(webhook.admin.port(), 0);
    assert_ne!(webhook.addr, webhook.admin);

    let cert_files = || CertFiles {
        cert: webhook.dir.path().join("tls.crt"),
        key: webhook.dir.path().join("tls.key"),
    };
    // The address is held by the running server: bind says which flag.
    let mut config = webhook::default_config(cert_files());
    config.listen = webhook.addr;
    let err = BoundServer::bind(config, Settings::default())
        .await
        .err()
        .expect("a taken address");
    assert!(
        matches!(
            err,
            ServeError::Bind {
                flag: "--listen",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&webhook.addr.to_string()), "{err}");

    // The certificate is checked first: unreadable, it fails bind before
    // the (taken) address is tried.
    let mut config = webhook::default_config(CertFiles {
        cert: webhook.dir.path().join("missing.crt"),
        ..cert_files()
    });
    config.listen = webhook.addr;
    let err = BoundServer::bind(config, Settings::default())
        .await
        .err()
        .expect("a missing certificate");
    assert!(matches!(err, ServeError::Tls(_)), "{err}");
    assert!(err.to_string().contains("missing.crt"), "{err}");
}

#[tokio::test]
async fn a_pod_review_is_answered_over_tls() {
    let webhook = Webhook::in_process(|_| {}).await;
    let review: Value = serde_json::from_str(POD_CREATE).unwrap();
    let (status, answer) = webhook.post("/mutate", POD_CREATE).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(answer["response"]["patch"].is_string(), "{answer}");
}

#[tokio::test]
async fn alpn_offers_http2_and_http1() {
    let webhook = Webhook::in_process(|_| {}).await;
    let h2 = send_review(&webhook, &webhook.client()).await;
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    let h1 = send_review(
        &webhook,
        &webhook.client_builder().http1_only().build().unwrap(),
    )
    .await;
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!(h1.status(), 200);
}

#[tokio::test]
async fn rotated_certificate_is_served_on_the_next_connection() {
    let webhook = Webhook::in_process(|_| {}).await;
    let first = send_review(&webhook, &webhook.client()).await;
    let before = served_certificate(&first);
    assert_eq!(
        before,
        pem_to_der(&std::fs::read_to_string(webhook.dir.path().join("tls.crt")).unwrap())
    );

    // Rotate like cert-manager: new key and cert from the same CA, swapped in
    // by rename.
    let (cert, key) = webhook.ca.issue(&dev_names()).unwrap();
    for (name, contents) in [("tls.key", &key), ("tls.crt", &cert)] {
        let tmp = webhook.dir.path().join(format!("{name}.new"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, webhook.dir.path().join(name)).unwrap();
    }
    let second = send_review(&webhook, &webhook.client()).await;
    assert_eq!(second.status(), 200);
    let after = served_certificate(&second);
    assert_ne!(before, after);
    assert_eq!(after, pem_to_der(&cert));

    let metrics = webhook.metrics().await;
    assert!(
        metrics.contains("landgate_tls_certificate_reloads_total 1"),
        "{metrics}"
    );
}

// === the binary ===

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight() {
    let mut webhook = Webhook::binary(&[]).await;
    let connector = wire::connector(&webhook.ca.ca_pem(), &[]);
    let mut tls = wire::connect(&connector, webhook.addr).await.unwrap();

    // Send the headers and half the body, then SIGTERM, then the rest.
    let body = POD_CREATE.as_bytes();
    let (head, tail) = body.split_at(body.len() / 2);
    let headers = format!(
        "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(headers.as_bytes()).await.unwrap();
    tls.write_all(head).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    webhook.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Not ready any more, and no new connections...
    assert_ne!(webhook.admin_get("/readyz").await.map(|r| r.0), Some(200));
    assert!(
        tokio::net::TcpStream::connect(webhook.addr).await.is_err(),
        "listener still accepts after SIGTERM"
    );
    // ...but the request in flight completes.
    tls.write_all(tail).await.unwrap();
    tls.flush().await.unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("3f1c7a52-4b8e-4d1a-9a57-0f2e8d6c1b01"),
        "{response}"
    );

    let status = webhook.exit_status(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn limit_flags_reach_the_server() {
    let webhook = Webhook::binary(&[
        "--first-request-timeout",
        "1s",
        "--max-connections",
        "2",
        "--max-concurrent-streams",
        "7",
        "--max-body-bytes",
        "4096",
    ])
    .await;
    let ca = webhook.ca.ca_pem();
    // HTTP/2 peers are told the stream limit...
    let mut h2 = wire::connect(&wire::connector(&ca, &[b"h2"]), webhook.addr)
        .await
        .unwrap();
    h2.write_all(&wire::preface()).await.unwrap();
    let settings = wire::next_frame(&mut h2).await.unwrap().expect("SETTINGS");
    assert!(
        settings
            .settings()
            .contains(&(wire::SETTINGS_MAX_CONCURRENT_STREAMS, 7)),
        "{settings:?}"
    );
    // ...a second connection fills the cap and a third is refused...
    let connector = wire::connector(&ca, &[]);
    let mut silent = wire::connect(&connector, webhook.addr).await.unwrap();
    assert!(wire::connect(&connector, webhook.addr).await.is_err());
    // ...and both, having sent no request, are closed.
    wire::closed_within(&mut silent, Duration::from_secs(4))
        .await
        .expect("a connection without a request is closed after --first-request-timeout");
    wire::closed_within(&mut h2, Duration::from_secs(4))
        .await
        .expect("an HTTP/2 connection without a stream is closed after --first-request-timeout");
    // The count follows the close by a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let metrics = webhook.metrics().await;
        let missing = [
            r#"landgate_connections_refused_total{listener="admission"} 1"#,
            r#"landgate_connections_closed_total{listener="admission",reason="first_request_timeout"} 2"#,
        ]
        .into_iter()
        .find(|line| !metrics.contains(line));
        let Some(line) = missing else { break };
        assert!(Instant::now() < deadline, "missing {line:?} in:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A body over --max-body-bytes is refused, naming the flag.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(10_000));
    let (status, answer) = webhook.post("/mutate", big).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("--max-body-bytes"),
        "{answer}"
    );
}

#[test]
fn an_unreadable_certificate_stops_the_start_with_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_landgate-webhook"))
        .arg("serve")
        .arg("--no-namespace-watch")
        .args(["--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .output()
        .expect("landgate-webhook runs");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--tls-cert") && stderr.contains("tls.crt"),
        "{stderr}"
    );
}

/// With the Namespace watch on, the webhook is not ready until the watch has
/// listed the Namespaces: against an API server that accepts connections
/// and never answers, /readyz stays 503 while /healthz is 200.
#[tokio::test]
async fn not_ready_until_the_namespace_cache_has_synced() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let apiserver = silent.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = webhook::kubeconfig_for(dir.path(), apiserver);
    let webhook =
        Webhook::spawn(&["--no-resolve"], &[("KUBECONFIG", kubeconfig.as_os_str())]).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let (health, _) = webhook
            .admin_get("/healthz")
            .await
            .expect("/healthz answers");
        assert_eq!(health, 200);
        let (ready, body) = webhook.admin_get("/readyz").await.expect("/readyz answers");
        assert_eq!(
            ready, 503,
            "ready before the namespace cache synced: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(silent);
}
