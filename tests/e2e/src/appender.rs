//! A second, test-only mutating webhook, with two jobs by path:
//! - `/append` appends a container to every pod it sees (once). Registered
//!   so that the API server calls it after landgate: landgate's
//!   `reinvocationPolicy: IfNeeded` must then wrap the new container without
//!   wrapping the first one twice.
//! - `/unwrap` takes the launcher off the command of the first container
//!   that runs through it (what a careless or hostile mutating webhook could
//!   do after landgate). Registered before landgate with `IfNeeded`, it is
//!   reinvoked after landgate wrapped the pod, and landgate is not reinvoked
//!   after it: only the validating webhook can catch the change.
//!
//! It also stands in for a kubelet's streaming endpoint: the API server
//! forwards `kubectl exec` and `attach` to `/exec/…` and `/attach/…` of the
//! node named in the pod, with the command in the query string; the server
//! records each such request (and answers 404), so a test sees exactly
//! what the API server would have had a node run.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

/// Name of the container the appender adds.
pub const APPENDED: &str = "e2e-appended";

/// What the appended container runs.
pub fn appended_command() -> Vec<String> {
    vec!["sleep".into(), "3600".into()]
}

pub struct Appender {
    pub port: u16,
    reviews: Arc<AtomicUsize>,
    kubelet: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Appender {
    /// Serves HTTPS on a loopback port with the given PEM files.
    pub async fn start(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let certs = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("reading {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading {}", key.display()))?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("building the appender's TLS config")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let reviews = Arc::new(AtomicUsize::new(0));
        let counter = reviews.clone();
        let kubelet = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = kubelet.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let counter = counter.clone();
                        let recorded = recorded.clone();
                        async move { Ok::<_, Infallible>(handle(request, &counter, &recorded).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self {
            port,
            reviews,
            kubelet,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/append", self.port)
    }

    pub fn unwrap_url(&self) -> String {
        format!("https://127.0.0.1:{}/unwrap", self.port)
    }

    /// The exec and attach requests the API server sent it as a kubelet:
    /// `path?query` each, in order.
    pub fn kubelet_requests(&self) -> Vec<String> {
        self.kubelet
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many reviews it answered.
    pub fn reviews(&self) -> usize {
        self.reviews.load(Ordering::SeqCst)
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    request: Request<Incoming>,
    counter: &AtomicUsize,
    kubelet: &std::sync::Mutex<Vec<String>>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path.starts_with("/exec/") || path.starts_with("/attach/") {
        let target = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        kubelet
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(target);
        return respond(
            StatusCode::NOT_FOUND,
            b"e2e kubelet stand-in: recorded, not run".to_vec(),
        );
    }
    let unwrap = path == "/unwrap";
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return respond(StatusCode::BAD_REQUEST, err.to_string().into_bytes()),
    };
    counter.fetch_add(1, Ordering::SeqCst);
    let answer = if unwrap {
        unwrap_launcher(&body)
    } else {
        append_container(&body)
    };
    match answer {
        Ok(review) => respond(StatusCode::OK, review),
        Err(err) => respond(StatusCode::BAD_REQUEST, format!("{err:#}").into_bytes()),
    }
}

fn respond(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The review answer: a patch appending [`APPENDED`] unless it is there.
pub fn append_container(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    answer(body, |pod| {
        let present = pod["spec"]["containers"]
            .as_array()
            .is_some_and(|containers| containers.iter().any(|c| c["name"] == APPENDED));
        (!present).then(|| {
            json!([{
                "op": "add",
                "path": "/spec/containers/-",
                "value": {"name": APPENDED, "image": "busybox:1.36", "command": appended_command()},
            }])
        })
    })
}

/// The launcher's prefix, as the contract writes it (declared here, not
/// imported: the end-to-end oracle does not share the implementation's
/// constants).
const LAUNCHER_PREFIX: [&str; 3] = ["/landgate/landgate", "exec", "--"];

/// The review answer: a patch replacing the command of the first app
/// container that runs through the launcher with the command without it.
pub fn unwrap_launcher(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    answer(body, |pod| {
        let containers = pod["spec"]["containers"].as_array()?;
        containers.iter().enumerate().find_map(|(i, c)| {
            let command: Vec<&str> = c["command"]
                .as_array()?
                .iter()
                .map(|word| word.as_str())
                .collect::<Option<_>>()?;
            let rest = command.strip_prefix(LAUNCHER_PREFIX.as_slice())?;
            Some(json!([{
                "op": "replace",
                "path": format!("/spec/containers/{i}/command"),
                "value": rest,
            }]))
        })
    })
}

/// An AdmissionReview answer with the patch `patch` gives for the object
/// (none: admitted unchanged).
fn answer(
    body: &[u8],
    patch: impl FnOnce(&serde_json::Value) -> Option<serde_json::Value>,
) -> anyhow::Result<Vec<u8>> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).context("parsing the AdmissionReview")?;
    let request: AdmissionRequest<DynamicObject> = review
        .try_into()
        .context("the AdmissionReview has no request")?;
    let mut response = AdmissionResponse::from(&request);
    if let Some(pod) = request.object.as_ref()
        && let Some(patch) = patch(&pod.data)
    {
        response = response.with_patch(serde_json::from_value(patch)?)?;
    }
    // kube-core models the patch as bytes, which serde writes as an array
    // of numbers; the API (Go's []byte) specifies a base64 string.
    let mut review = serde_json::to_value(response.into_review())?;
    if let Some(patch) = review.pointer_mut("/response/patch") {
        let bytes: Vec<u8> = serde_json::from_value(patch.take())?;
        *patch = base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into();
    }
    Ok(serde_json::to_vec(&review)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(containers: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "42",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE",
                "userInfo": {},
                "namespace": "n",
                "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                           "spec": {"containers": containers}},
            },
        }))
        .unwrap()
    }

    #[test]
    fn appends_once() {
        let answer: serde_json::Value =
            serde_json::from_slice(&append_container(&review(json!([{"name": "app"}]))).unwrap())
                .unwrap();
        assert_eq!(answer["response"]["uid"], "42", "{answer}");
        assert_eq!(answer["response"]["allowed"], true);
        // kube-core serializes the patch bytes as a JSON array (the API
        // server's decoder accepts that as well as base64).
        let patch: Vec<u8> = match &answer["response"]["patch"] {
            serde_json::Value::String(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
            other => serde_json::from_value(other.clone()).unwrap(),
        };
        let patch: serde_json::Value = serde_json::from_slice(&patch).unwrap();
        assert_eq!(patch[0]["value"]["name"], APPENDED);

        let again: serde_json::Value = serde_json::from_slice(
            &append_container(&review(json!([{"name": "app"}, {"name": APPENDED}]))).unwrap(),
        )
        .unwrap();
        assert!(again["response"].get("patch").is_none(), "{again}");
    }

    #[test]
    fn unwraps_the_first_wrapped_container() {
        let wrapped = json!([
            {"name": "a", "command": ["sleep", "1"]},
            {"name": "b", "command": ["/landgate/landgate", "exec", "--", "sleep", "2"]},
        ]);
        let answer: serde_json::Value =
            serde_json::from_slice(&unwrap_launcher(&review(wrapped)).unwrap()).unwrap();
        let patch = base64::engine::general_purpose::STANDARD
            .decode(answer["response"]["patch"].as_str().unwrap())
            .unwrap();
        let patch: serde_json::Value = serde_json::from_slice(&patch).unwrap();
        assert_eq!(
            patch,
            json!([{"op": "replace", "path": "/spec/containers/1/command", "value": ["sleep", "2"]}])
        );
        let plain: serde_json::Value = serde_json::from_slice(
            &unwrap_launcher(&review(json!([{"name": "a", "command": ["sleep", "1"]}]))).unwrap(),
        )
        .unwrap();
        assert!(plain["response"].get("patch").is_none(), "{plain}");
    }
}
