//! The real `landgate-webhook serve` binary on loopback, with generated
//! certificates, spoken to over TLS by a client that trusts only that CA.

#[path = "support/wire.rs"]
mod wire;

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use landgate_webhook::tls::{DevCa, dev_names, install_crypto_provider};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const POD_CREATE: &str = include_str!("../../../tests/fixtures/admission/pod-create.json");
const POD_CREATE_DRY_RUN: &str =
    include_str!("../../../tests/fixtures/admission/pod-create-dry-run.json");
const CONFIGMAP_CREATE: &str = include_str!("../../../tests/fixtures/admission/configmap-create.json");
const POD_CREATE_BAD_ANNOTATION: &str =
    include_str!("../../../tests/fixtures/admission/pod-create-bad-annotation.json");

/// A running webhook process; killed on drop, its log printed if the test failed.
struct Webhook {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
    ca: DevCa,
    log: PathBuf,
}

impl Webhook {
    fn start(extra: &[&str]) -> Self {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::new().unwrap();
        let (cert, key) = ca.issue(&dev_names()).unwrap();
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        let log = dir.path().join("webhook.log");
        // Port 0: the webhook binds, then logs the addresses it got.
        let mut child = Command::new(env!("CARGO_BIN_EXE_landgate-webhook"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(["--log-format", "json"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("landgate-webhook starts");
        let (addr, admin) = bound_addresses(&mut child, &log);
        let mut webhook = Self {
            child,
            addr,
            admin,
            dir,
            ca,
            log,
        };
        webhook.wait_ready();
        webhook
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("webhook exited early with {status}:\n{}", self.log_text());
            }
            if http_get(self.admin, "/readyz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("webhook not ready after 20s:\n{}", self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A client trusting only this webhook's CA, with no connection reuse
    /// (so each request is a new handshake).
    fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca.ca_pem().as_bytes()).unwrap(),
            )
            .resolve("localhost", self.addr)
            .pool_max_idle_per_host(0)
            .tls_info(true)
    }

    fn client(&self) -> reqwest::Client {
        self.client_builder().build().unwrap()
    }

    /// A ConfigMap review (allowed, no patch) on a new connection of `client`.
    async fn send_review(&self, client: &reqwest::Client) -> reqwest::Response {
        client
            .post(self.url("/mutate"))
            .body(CONFIGMAP_CREATE)
            .send()
            .await
            .unwrap()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- webhook log ---\n{}", self.log_text());
        }
    }
}

/// The addresses from the webhook's "serving" log line (JSON).
fn bound_addresses(child: &mut Child, log: &std::path::Path) -> (SocketAddr, SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let serving = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|entry| entry["listen"].is_string() && entry["admin"].is_string());
        if let Some(entry) = serving {
            let addr = |key: &str| entry[key].as_str().unwrap().parse().unwrap();
            return (addr("listen"), addr("admin"));
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("webhook exited early with {status}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no listen address logged after 20s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Minimal plain-HTTP GET for the admin port: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.get(9..12)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

async fn post(webhook: &Webhook, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = webhook
        .client()
        .post(webhook.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
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

#[tokio::test]
async fn mutate_round_trip_patches_the_pod() {
    let webhook = Webhook::start(&[]);
    for fixture in [POD_CREATE, POD_CREATE_DRY_RUN] {
        let review: Value = serde_json::from_str(fixture).unwrap();
        let (status, answer) = post(&webhook, "/mutate", fixture).await;
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
async fn non_pods_are_allowed_and_bad_annotations_rejected() {
    let webhook = Webhook::start(&[]);
    let (status, answer) = post(&webhook, "/mutate", CONFIGMAP_CREATE).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());

    let (status, answer) = post(&webhook, "/mutate", POD_CREATE_BAD_ANNOTATION).await;
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
async fn malformed_reviews_get_400_with_a_reason() {
    let webhook = Webhook::start(&[]);
    let (status, answer) = post(&webhook, "/mutate", "{\"apiVersion\": ").await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not a valid AdmissionReview"),
        "{answer}"
    );

    let mut review: Value = serde_json::from_str(POD_CREATE).unwrap();
    review["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (status, answer) = post(&webhook, "/mutate", review.to_string()).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("v1beta1"),
        "{answer}"
    );

    let (status, _) = post(&webhook, "/nope", "{}").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let webhook = Webhook::start(&["--max-body-bytes", "4096"]);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(10_000));
    let (status, answer) = post(&webhook, "/mutate", big.clone()).await;
    assert_eq!(status, 413);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("--max-body-bytes"),
        "{answer}"
    );
    // Without Content-Length (chunked), the limit still holds.
    let stream = futures_stream(big);
    let (status, _) = post(&webhook, "/preview", stream).await;
    assert_eq!(status, 413);
}

fn futures_stream(text: String) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = text
        .into_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

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

#[tokio::test]
async fn preview_answers_json_and_yaml() {
    let webhook = Webhook::start(&[]);
    let (status, answer) = post(&webhook, "/preview", NGINX_YAML).await;
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
    let (status, answer) = post(&webhook, "/preview", as_json.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["items"][0]["policies"]["nginx"]["net"]["bind"],
        json!([8080])
    );

    let (status, answer) = post(&webhook, "/preview?output=yaml", NGINX_YAML).await;
    assert_eq!(status, 200);
    let text = answer.as_str().expect("YAML text");
    assert!(text.contains("landgate-init"), "{text}");

    let (status, answer) = post(&webhook, "/preview?output=bogus", NGINX_YAML).await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("?output="));
}

#[tokio::test]
async fn alpn_offers_http2_and_http1() {
    let webhook = Webhook::start(&[]);
    let h2 = webhook.send_review(&webhook.client()).await;
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    let h1 = webhook
        .send_review(&webhook.client_builder().http1_only().build().unwrap())
        .await;
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!(h1.status(), 200);
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

#[tokio::test]
async fn rotated_certificate_is_served_on_the_next_connection() {
    let webhook = Webhook::start(&[]);
    let first = webhook.send_review(&webhook.client()).await;
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
    let second = webhook.send_review(&webhook.client()).await;
    assert_eq!(second.status(), 200);
    let after = served_certificate(&second);
    assert_ne!(before, after);
    assert_eq!(after, pem_to_der(&cert));

    let (_, metrics) = http_get(webhook.admin, "/metrics").unwrap();
    assert!(
        metrics.contains("landgate_tls_certificate_reloads_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight() {
    let mut webhook = Webhook::start(&[]);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(pem_to_der(
            &webhook.ca.ca_pem(),
        )))
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(webhook.addr).await.unwrap();
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();

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
    assert_ne!(http_get(webhook.admin, "/readyz").map(|r| r.0), Some(200));
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

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = webhook.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "webhook did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let webhook = Webhook::start(&[]);
    post(&webhook, "/mutate", POD_CREATE).await;
    post(&webhook, "/mutate", CONFIGMAP_CREATE).await;
    post(&webhook, "/mutate", POD_CREATE_BAD_ANNOTATION).await;
    post(&webhook, "/mutate", "garbage").await;
    let (status, metrics) = http_get(webhook.admin, "/metrics").unwrap();
    assert_eq!(status, 200);
    for line in [
        r#"landgate_admission_reviews_total{outcome="mutated"} 1"#,
        r#"landgate_admission_reviews_total{outcome="skipped"} 1"#,
        r#"landgate_admission_reviews_total{outcome="rejected"} 1"#,
        r#"landgate_bad_requests_total{path="/mutate",code="400"} 1"#,
        "landgate_admission_review_duration_seconds_count 3",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    // The review log line names the pod and never carries the pod body.
    let log = webhook.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("\"outcome\":\"mutated\""))
        .expect("a log line for the mutated review");
    let entry: Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["namespace"], "shop");
    assert_eq!(entry["name"], "web");
    assert!(!line.contains("nginx:1.27"), "{line}");
}

#[tokio::test]
async fn connection_limit_flags_reach_the_server() {
    let webhook = Webhook::start(&[
        "--first-request-timeout",
        "1s",
        "--max-connections",
        "2",
        "--max-concurrent-streams",
        "7",
    ]);
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
        let (_, metrics) = http_get(webhook.admin, "/metrics").unwrap();
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
}
