//! `kubectl exec` and `kubectl attach`: the API server admits them as
//! CONNECT requests on `pods/exec` / `pods/attach`, with a `PodExecOptions`
//! / `PodAttachOptions` object, and passes a mutating webhook's patch of the
//! options on to the kubelet (the README, "kubectl exec", has the evidence).
//! The request names the pod but does not carry it: the pod is read from
//! the API server (one GET per exec; execs are rare and human-paced), then
//! the engine decides ([`landgate_engine::exec`]). The whole pod, not its
//! metadata: which containers are wrapped also shows in its spec, when its
//! status annotation was removed through `pods/status`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use landgate_engine::Outcome;
use landgate_engine::exec::{Connect, ExecDecision, decide_exec};

use crate::admission::{NamespaceLookup, Parsed, Request, Reviewed, refuse, reviewed, unreadable};

/// What a CONNECT request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exec,
    Attach,
}

/// The pod an exec or attach goes to: `(namespace, name)`.
pub struct Target<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

/// What the GET of the pod found.
#[derive(Debug)]
pub enum PodMeta {
    Found(Box<Pod>),
    /// No such pod: the API server answers the exec with its own 404.
    NotFound,
    /// It could not be read; the exec is refused rather than let through.
    Unavailable(String),
}

/// How an exec or attach was decided, for the metric and the audit line.
#[derive(Debug, Clone)]
pub struct Audit {
    /// `sandboxed` (rewritten), `passed`, `allowed` (unsandboxed under
    /// `allow`), `refused`.
    pub decision: &'static str,
    pub user: String,
    pub container: String,
    /// The command as the user sent it (empty for attach).
    pub command: Vec<String>,
}

/// Reads pods through the API server.
#[derive(Clone)]
pub struct PodReader {
    client: kube::Client,
    timeout: Duration,
}

impl PodReader {
    /// `timeout` bounds one GET (inside the review's own timeout).
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    pub async fn pod(&self, target: &Target<'_>) -> PodMeta {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), target.namespace);
        match tokio::time::timeout(self.timeout, api.get_opt(target.name)).await {
            Ok(Ok(Some(pod))) => PodMeta::Found(Box::new(pod)),
            Ok(Ok(None)) => PodMeta::NotFound,
            Ok(Err(err)) => PodMeta::Unavailable(err.to_string()),
            Err(_) => PodMeta::Unavailable(format!("no answer within {:?}", self.timeout)),
        }
    }
}

impl Parsed {
    /// The pod of an exec or attach, when this review is one.
    pub fn connect_target(&self) -> Option<Target<'_>> {
        let Request::Dynamic(request) = &self.0 else {
            return None;
        };
        let is_exec_or_attach = request.operation == Operation::Connect
            && request.resource.group.is_empty()
            && request.resource.resource == "pods"
            && matches!(request.sub_resource.as_deref(), Some("exec" | "attach"));
        if !is_exec_or_attach {
            return None;
        }
        Some(Target {
            namespace: request.namespace.as_deref().unwrap_or_default(),
            name: &request.name,
        })
    }

    /// Answers an exec or attach into `pod`, as read.
    pub fn answer_connect(
        &self,
        namespace_annotations: &NamespaceLookup,
        pod: &PodMeta,
    ) -> Reviewed {
        let Request::Dynamic(request) = &self.0 else {
            unreachable!("answer_connect is called for connect_target() reviews only");
        };
        let (response, outcome, audit) = connect(request, namespace_annotations, pod);
        let mut answered = reviewed(request, response, outcome);
        answered.connect = audit;
        answered
    }
}

fn kind_of(request: &AdmissionRequest<DynamicObject>) -> Option<Kind> {
    if !request.kind.group.is_empty() || request.kind.version != "v1" {
        return None;
    }
    match (
        &request.operation,
        request.sub_resource.as_deref(),
        request.kind.kind.as_str(),
    ) {
        (Operation::Connect, Some("exec"), "PodExecOptions") => Some(Kind::Exec),
        (Operation::Connect, Some("attach"), "PodAttachOptions") => Some(Kind::Attach),
        _ => None,
    }
}

fn connect(
    request: &AdmissionRequest<DynamicObject>,
    namespace_annotations: &NamespaceLookup,
    pod: &PodMeta,
) -> (AdmissionResponse, Outcome, Option<Audit>) {
    let response = AdmissionResponse::from(request);
    // An exec or attach whose options landgate cannot read is refused, not
    // let through: the API server sends v1 PodExecOptions/PodAttachOptions
    // today, and a new shape must be looked at before it is admitted.
    let Some(kind) = kind_of(request) else {
        let (response, outcome) = refuse(
            response,
            "exec-refused",
            format!(
                "landgate does not know the options of this pods/{} request ({}/{} {}); it is refused rather than run outside the sandbox",
                request.sub_resource.as_deref().unwrap_or_default(),
                request.kind.group,
                request.kind.version,
                request.kind.kind
            ),
        );
        return (response, outcome, None);
    };
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let label = format!("{namespace}/{}", request.name);
    let options = request.object.as_ref().map(|o| &o.data);
    let container = options
        .and_then(|o| o.get("container"))
        .and_then(|c| c.as_str())
        .map(str::to_owned);
    let command: Option<Vec<String>> = match kind {
        Kind::Attach => None,
        Kind::Exec => match options.and_then(|o| o.get("command")) {
            None | Some(serde_json::Value::Null) => Some(Vec::new()),
            Some(value) => match serde_json::from_value(value.clone()) {
                Ok(command) => Some(command),
                Err(err) => {
                    let (response, outcome) = unreadable(
                        response,
                        format!(
                            "the PodExecOptions command of pod {label} is not a list of strings: {err}"
                        ),
                    );
                    return (response, outcome, None);
                }
            },
        },
    };
    let mut audit = Audit {
        decision: "refused",
        user: request.user_info.username.clone().unwrap_or_default(),
        container: container.clone().unwrap_or_default(),
        command: command.clone().unwrap_or_default(),
    };
    let pod = match pod {
        PodMeta::Found(pod) => pod,
        PodMeta::NotFound => {
            audit.decision = "passed";
            let why = format!("pod {label} does not exist");
            return (response, Outcome::Passed(why), Some(audit));
        }
        PodMeta::Unavailable(err) => {
            let (response, outcome) = refuse(
                response,
                "pod-unreadable",
                format!(
                    "landgate could not read pod {label} to sandbox this {}: {err}; retry",
                    if kind == Kind::Exec { "exec" } else { "attach" }
                ),
            );
            return (response, outcome, Some(audit));
        }
    };
    let Some(ns_annotations) = namespace_annotations(namespace) else {
        let (response, outcome) = refuse(
            response,
            "namespace-unknown",
            format!(
                "namespace {namespace:?} is not in landgate's namespace cache yet, so its landgate.dev/exec cannot be applied: retry in a few seconds"
            ),
        );
        return (response, outcome, Some(audit));
    };
    let connect = match &command {
        Some(command) => Connect::Exec(command),
        None => Connect::Attach,
    };
    let decision = decide_exec(
        pod,
        namespace,
        &ns_annotations,
        container.as_deref(),
        connect,
    );
    match decision {
        ExecDecision::Rewrite(rewritten) => {
            audit.decision = "sandboxed";
            let patch = json_patch::Patch(vec![json_patch::PatchOperation::Replace(
                json_patch::ReplaceOperation {
                    path: json_patch::jsonptr::PointerBuf::from_tokens(["command"]),
                    value: serde_json::json!(rewritten),
                },
            )]);
            match response.clone().with_patch(patch) {
                Ok(patched) => (patched, Outcome::Wrapped, Some(audit)),
                Err(err) => {
                    let message = format!("landgate could not encode its patch: {err}");
                    let (response, _) = refuse(response, "internal", message.clone());
                    (response, Outcome::Failed(message), Some(audit))
                }
            }
        }
        ExecDecision::Pass(why) => {
            audit.decision = "passed";
            (response, Outcome::Passed(why), Some(audit))
        }
        ExecDecision::Allowed(why) => {
            audit.decision = "allowed";
            (response, Outcome::Passed(why), Some(audit))
        }
        ExecDecision::Refuse(message) => {
            let (response, outcome) = refuse(response, "exec-refused", message);
            (response, outcome, Some(audit))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use landgate_engine::mutate::{NO_IMAGES, PodContext, mutate_pod};
    use landgate_engine::settings::Settings;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    /// A wrapped one-container pod `web`, as landgate stored it.
    fn wrapped(extra: &[(&str, &str)]) -> PodMeta {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "1"]}]}
        }))
        .unwrap();
        let none = BTreeMap::new();
        let context = PodContext {
            namespace: "shop",
            namespace_annotations: &none,
            images: NO_IMAGES,
        };
        let m = mutate_pod(&Settings::default(), context, &pod).unwrap();
        let mut stored = landgate_engine::patch::apply(&pod, &m.patch).unwrap();
        for (k, v) in extra {
            stored
                .metadata
                .annotations
                .get_or_insert_default()
                .insert((*k).to_owned(), (*v).to_owned());
        }
        PodMeta::Found(Box::new(stored))
    }

    /// A CONNECT review as the API server sends it for `kubectl exec`.
    fn exec_review(command: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "e1",
                "kind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "subResource": "exec",
                "name": "web",
                "namespace": "shop",
                "operation": "CONNECT",
                "userInfo": {"username": "alice"},
                "object": {"kind": "PodExecOptions", "apiVersion": "v1", "stdin": true,
                           "stdout": true, "tty": true, "container": "app", "command": command},
                "dryRun": false
            }
        }))
        .unwrap()
    }

    fn answer(body: &[u8], pod: &PodMeta) -> (Reviewed, Value) {
        let parsed = crate::admission::parse(body).unwrap();
        let target = parsed
            .connect_target()
            .expect("an exec is a connect target");
        assert_eq!((target.namespace, target.name), ("shop", "web"));
        let reviewed = parsed.answer_connect(&|_| Some(BTreeMap::new()), pod);
        let answer: Value = serde_json::from_slice(&reviewed.body()).unwrap();
        (reviewed, answer)
    }

    #[test]
    fn an_exec_by_absolute_path_is_rewritten_through_the_launcher() {
        let (reviewed, answer) =
            answer(&exec_review(json!(["/bin/sh", "-c", "id"])), &wrapped(&[]));
        assert_eq!(answer["response"]["allowed"], json!(true), "{answer}");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(answer["response"]["patch"].as_str().unwrap())
            .unwrap();
        let patch: Value = serde_json::from_slice(&patch).unwrap();
        assert_eq!(
            patch,
            json!([{"op": "replace", "path": "/command",
                    "value": ["/landgate/landgate", "exec", "--", "/bin/sh", "-c", "id"]}])
        );
        let audit = reviewed.connect.unwrap();
        assert_eq!(
            (audit.decision, audit.user.as_str()),
            ("sandboxed", "alice")
        );
    }

    #[test]
    fn deny_is_a_403_with_the_engines_message() {
        let (reviewed, answer) = answer(
            &exec_review(json!(["sh"])),
            &wrapped(&[("landgate.dev/exec", "deny")]),
        );
        assert_eq!(answer["response"]["allowed"], json!(false));
        assert_eq!(answer["response"]["status"]["code"], json!(403));
        assert!(
            answer["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("pod annotation landgate.dev/exec = \"deny\""),
            "{answer}"
        );
        assert_eq!(reviewed.connect.unwrap().decision, "refused");
    }

    #[test]
    fn a_pod_that_cannot_be_read_is_refused_and_a_missing_one_passed() {
        let (_, refused) = answer(
            &exec_review(json!(["sh"])),
            &PodMeta::Unavailable("connection refused".into()),
        );
        assert_eq!(refused["response"]["allowed"], json!(false));
        let (_, passed) = answer(&exec_review(json!(["sh"])), &PodMeta::NotFound);
        assert_eq!(passed["response"]["allowed"], json!(true));
        assert!(passed["response"].get("patch").is_none());
    }

    #[test]
    fn a_pod_create_is_not_a_connect_target() {
        let body = include_bytes!("../../../tests/fixtures/admission/pod-create.json");
        assert!(
            crate::admission::parse(body)
                .unwrap()
                .connect_target()
                .is_none()
        );
    }
}
