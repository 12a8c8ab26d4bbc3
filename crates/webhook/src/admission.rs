//! AdmissionReview in, AdmissionResponse out. Transport-free: the server
//! hands it bytes and writes back what it returns.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use landgate_engine::mutate::{self, PodContext, Verdict};
use landgate_engine::settings::Settings;
use landgate_engine::update;

/// The only AdmissionReview version the webhook registers for.
const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";

/// How a review ended, for metrics and the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReviewOutcome {
    /// The pod was wrapped (the response carries a patch).
    Mutated,
    /// Admitted unchanged: not a pod CREATE, already wrapped, opted out, ...
    Skipped,
    /// Refused with a message.
    Rejected,
    /// The webhook could not do its job (answered, but not with a verdict
    /// about the pod).
    Error,
}

impl ReviewOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mutated => "mutated",
            Self::Skipped => "skipped",
            Self::Rejected => "rejected",
            Self::Error => "error",
        }
    }
}

/// A request body that is not an AdmissionReview this webhook can answer.
/// The server turns it into a 400: there is no uid to echo.
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    #[error(
        "request body is not a valid AdmissionReview: {0} (send an admission.k8s.io/v1 AdmissionReview with a request)"
    )]
    Malformed(serde_json::Error),
    #[error(
        "unsupported AdmissionReview apiVersion {0:?}: register the webhook with admissionReviewVersions: [\"v1\"]"
    )]
    WrongApiVersion(String),
    #[error("AdmissionReview has no request: the API server sends one in every review")]
    MissingRequest,
}

/// The answer to one review, with what the log line and metrics need.
#[derive(Debug)]
pub struct Reviewed {
    /// The serialized AdmissionReview response body.
    pub body: Vec<u8>,
    pub outcome: ReviewOutcome,
    pub uid: String,
    pub namespace: String,
    /// Pod name, or `generateName*` for pods named by the API server.
    pub name: String,
    pub dry_run: bool,
    pub patch_ops: usize,
    pub warnings: usize,
    /// Why the pod was skipped or rejected (logged, never the pod itself).
    pub reason: Option<String>,
}

/// Answers one AdmissionReview body.
pub fn review(
    settings: &Settings,
    namespace_annotations: &dyn Fn(&str) -> BTreeMap<String, String>,
    body: &[u8],
) -> Result<Reviewed, BadReview> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(BadReview::Malformed)?;
    if review.types.api_version != ADMISSION_API_VERSION {
        return Err(BadReview::WrongApiVersion(review.types.api_version));
    }
    let request: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|_| BadReview::MissingRequest)?;

    let mut reviewed = Reviewed {
        body: Vec::new(),
        outcome: ReviewOutcome::Skipped,
        uid: request.uid.clone(),
        namespace: request.namespace.clone().unwrap_or_default(),
        name: request.name.clone(),
        dry_run: request.dry_run,
        patch_ops: 0,
        warnings: 0,
        reason: None,
    };
    let response = answer(settings, namespace_annotations, &request, &mut reviewed);
    reviewed.body = encode(response);
    Ok(reviewed)
}

/// What the webhook does with a request, by operation and subresource.
enum Review {
    /// A pod CREATE: wrap it ([`mutate::mutate_pod`]).
    Create,
    /// A pod UPDATE, plain or through `pods/ephemeralcontainers` (which
    /// carries the whole Pod as object and oldObject): refuse what would
    /// reach the sandbox ([`update::check_update`]).
    Update,
}

impl Review {
    fn of(request: &AdmissionRequest<DynamicObject>) -> Option<Self> {
        let is_pod = request.kind.group.is_empty()
            && request.kind.version == "v1"
            && request.kind.kind == "Pod";
        if !is_pod {
            return None;
        }
        match (&request.operation, request.sub_resource.as_deref()) {
            (Operation::Create, None) => Some(Self::Create),
            (Operation::Update, None | Some(EPHEMERAL_CONTAINERS)) => Some(Self::Update),
            _ => None,
        }
    }
}

/// The subresource `kubectl debug` patches.
const EPHEMERAL_CONTAINERS: &str = "ephemeralcontainers";

fn answer(
    settings: &Settings,
    namespace_annotations: &dyn Fn(&str) -> BTreeMap<String, String>,
    request: &AdmissionRequest<DynamicObject>,
    reviewed: &mut Reviewed,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let Some(kind) = Review::of(request) else {
        reviewed.reason = Some(format!(
            "not a pod creation or update ({:?} {}{})",
            request.operation,
            request.kind.kind,
            request
                .sub_resource
                .as_deref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default()
        ));
        return response;
    };
    let pod = match read_pod(request.object.as_ref(), "object") {
        Ok(pod) => pod,
        Err(message) => return unreadable(response, reviewed, message),
    };
    if reviewed.name.is_empty() {
        reviewed.name = match (&pod.metadata.name, &pod.metadata.generate_name) {
            (Some(name), _) => name.clone(),
            (None, Some(prefix)) => format!("{prefix}*"),
            (None, None) => String::new(),
        };
    }
    // A pod's namespace is the request's; the object often leaves it empty.
    let namespace = reviewed.namespace.clone();
    match kind {
        Review::Create => {
            let annotations = namespace_annotations(&namespace);
            let context = PodContext {
                namespace: &namespace,
                namespace_annotations: &annotations,
            };
            wrap(settings, context, &pod, response, reviewed)
        }
        Review::Update => match read_pod(request.old_object.as_ref(), "oldObject") {
            Ok(old) => guard(&namespace, &old, &pod, response, reviewed),
            Err(message) => unreadable(response, reviewed, message),
        },
    }
}

/// A pod UPDATE: admitted unchanged, or refused; never patched.
fn guard(
    namespace: &str,
    old: &Pod,
    pod: &Pod,
    response: AdmissionResponse,
    reviewed: &mut Reviewed,
) -> AdmissionResponse {
    match update::check_update(namespace, old, pod) {
        Ok(admitted) => {
            reviewed.reason = Some(admitted.reason().to_owned());
            response
        }
        Err(err) => {
            reviewed.outcome = ReviewOutcome::Rejected;
            reviewed.reason = Some(err.to_string());
            deny(response, 403, "Forbidden", err.to_string())
        }
    }
}

/// A pod CREATE: the engine's patch, or its refusal.
fn wrap(
    settings: &Settings,
    context: PodContext<'_>,
    pod: &Pod,
    response: AdmissionResponse,
    reviewed: &mut Reviewed,
) -> AdmissionResponse {
    match mutate::mutate_pod(settings, context, pod) {
        Err(err) => {
            reviewed.outcome = ReviewOutcome::Rejected;
            reviewed.reason = Some(err.to_string());
            deny(response, 403, "Forbidden", err.to_string())
        }
        Ok(mutation) => {
            reviewed.warnings = mutation.warnings.len();
            reviewed.patch_ops = mutation.patch.0.len();
            reviewed.outcome = match &mutation.verdict {
                Verdict::Wrapped => ReviewOutcome::Mutated,
                Verdict::AlreadyWrapped => {
                    reviewed.reason = Some("already wrapped".into());
                    ReviewOutcome::Skipped
                }
                Verdict::Skipped(reason) => {
                    reviewed.reason = Some(reason.clone());
                    ReviewOutcome::Skipped
                }
            };
            let mut response = response;
            if !mutation.warnings.is_empty() {
                response.warnings = Some(mutation.warnings);
            }
            if mutation.patch.0.is_empty() {
                return response;
            }
            match response.clone().with_patch(mutation.patch) {
                Ok(patched) => patched,
                Err(err) => {
                    reviewed.outcome = ReviewOutcome::Error;
                    reviewed.reason = Some(err.to_string());
                    deny(
                        response,
                        500,
                        "InternalError",
                        format!("landgate could not encode its patch: {err}"),
                    )
                }
            }
        }
    }
}

/// The pod in `object` (the request's `object` or `oldObject`, named by
/// `which`); the error is the message for the denial.
fn read_pod(object: Option<&DynamicObject>, which: &str) -> Result<Pod, String> {
    let object =
        object.ok_or_else(|| format!("the admission request for a pod carries no {which}"))?;
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|err| {
            format!("landgate could not read the pod in the admission request's {which}: {err}")
        })
}

/// A request whose pod cannot be read: the webhook cannot judge it.
fn unreadable(
    response: AdmissionResponse,
    reviewed: &mut Reviewed,
    message: String,
) -> AdmissionResponse {
    reviewed.outcome = ReviewOutcome::Error;
    reviewed.reason = Some(message.clone());
    deny(response, 400, "BadRequest", message)
}

fn deny(
    response: AdmissionResponse,
    code: u16,
    reason: &str,
    message: impl ToString,
) -> AdmissionResponse {
    let mut response = response.deny(message);
    response.result.code = code;
    response.result.reason = reason.to_owned();
    response
}

/// Serializes the response review. kube-core models `patch` as bytes, which
/// serde_json writes as an array of numbers; the API contract (Go's []byte)
/// is a base64 string, so it is rewritten here.
fn encode(response: AdmissionResponse) -> Vec<u8> {
    let mut value = match serde_json::to_value(response.into_review()) {
        Ok(value) => value,
        Err(err) => unreachable!("AdmissionReview serializes: {err}"),
    };
    if let Some(patch) = value.pointer_mut("/response/patch") {
        let bytes: Vec<u8> = patch
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect()
            })
            .unwrap_or_default();
        *patch = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    serde_json::to_vec(&value).unwrap_or_else(|err| unreachable!("JSON value serializes: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn no_annotations(_: &str) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn run(body: &Value) -> (Reviewed, Value) {
        let reviewed = review(
            &Settings::default(),
            &no_annotations,
            &serde_json::to_vec(body).unwrap(),
        )
        .unwrap();
        let answer: Value = serde_json::from_slice(&reviewed.body).unwrap();
        (reviewed, answer)
    }

    fn pod_review(operation: &str, pod: Value) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop",
                "operation": operation,
                "userInfo": {"username": "alice"},
                "object": pod,
                "dryRun": false
            }
        })
    }

    #[test]
    fn non_pod_requests_are_allowed_untouched() {
        let mut body = pod_review("CREATE", json!({"apiVersion": "v1", "kind": "ConfigMap"}));
        body["request"]["kind"]["kind"] = json!("ConfigMap");
        let (reviewed, answer) = run(&body);
        assert_eq!(reviewed.outcome, ReviewOutcome::Skipped);
        assert_eq!(answer["response"]["allowed"], json!(true));
        assert_eq!(
            answer["response"]["uid"],
            json!("705ab4f5-6393-11e8-b7cc-42010a800002")
        );
        assert!(answer["response"].get("patch").is_none());
    }

    /// The fixture's pod as landgate stored it (through the real engine).
    fn stored_pod() -> Value {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/admission/pod-create.json"
        ))
        .unwrap();
        let pod: Pod = serde_json::from_value(fixture["request"]["object"].clone()).unwrap();
        let annotations = BTreeMap::new();
        let context = PodContext {
            namespace: "shop",
            namespace_annotations: &annotations,
        };
        let mutation = mutate::mutate_pod(&Settings::default(), context, &pod).unwrap();
        assert_eq!(mutation.verdict, Verdict::Wrapped);
        serde_json::to_value(mutation.pod).unwrap()
    }

    /// An UPDATE of `old` to `new`, through `sub_resource` if given, the
    /// way the API server sends it (a PATCH is an UPDATE to admission).
    fn update_review(old: Value, new: Value, sub_resource: Option<&str>) -> Value {
        let mut body = pod_review("UPDATE", new);
        let request = &mut body["request"];
        request["name"] = json!("web");
        request["oldObject"] = old;
        request["options"] = json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"});
        if let Some(sub_resource) = sub_resource {
            request["subResource"] = json!(sub_resource);
            request["requestSubResource"] = json!(sub_resource);
        }
        body
    }

    fn with_debugger(pod: &Value, mounts: Value) -> Value {
        let mut pod = pod.clone();
        pod["spec"]["ephemeralContainers"] = json!([{
            "name": "debugger",
            "image": "busybox:1.36",
            "command": ["sh"],
            "volumeMounts": mounts,
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        }]);
        pod
    }

    fn assert_refused(reviewed: &Reviewed, answer: &Value, needle: &str) {
        assert_eq!(reviewed.outcome, ReviewOutcome::Rejected);
        assert_eq!(answer["response"]["allowed"], json!(false));
        assert_eq!(answer["response"]["status"]["code"], json!(403));
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
        assert!(answer["response"].get("patch").is_none());
    }

    fn assert_admitted_unchanged(reviewed: &Reviewed, answer: &Value, reason: &str) {
        assert_eq!(reviewed.outcome, ReviewOutcome::Skipped);
        assert_eq!(reviewed.reason.as_deref(), Some(reason));
        assert_eq!(answer["response"]["allowed"], json!(true));
        assert!(answer["response"].get("patch").is_none());
        assert_eq!(reviewed.patch_ops, 0);
    }

    #[test]
    fn ephemeral_container_mounting_the_launcher_volume_is_refused() {
        let old = stored_pod();
        let new = with_debugger(&old, json!([{"name": "landgate", "mountPath": "/lg"}]));
        let (reviewed, answer) = run(&update_review(old, new, Some("ephemeralcontainers")));
        assert_refused(
            &reviewed,
            &answer,
            "container \"debugger\" (spec.ephemeralContainers[0].volumeMounts[0]) mounts volume \"landgate\"",
        );
        assert_eq!(reviewed.name, "web");
    }

    #[test]
    fn plain_ephemeral_container_is_admitted_unchanged() {
        let old = stored_pod();
        let new = with_debugger(&old, json!(null));
        let (reviewed, answer) = run(&update_review(old, new, Some("ephemeralcontainers")));
        assert_admitted_unchanged(
            &reviewed,
            &answer,
            "pod update: nothing landgate guards changed",
        );
    }

    #[rstest::rstest]
    #[case::applied(false)]
    #[case::dry_run(true)]
    fn landgate_init_image_swap_is_refused(#[case] dry_run: bool) {
        let old = stored_pod();
        let mut new = old.clone();
        new["spec"]["initContainers"][0]["image"] = json!("tenant.example/evil:1");
        let mut body = update_review(old, new, None);
        body["request"]["dryRun"] = json!(dry_run);
        let (reviewed, answer) = run(&body);
        assert_refused(
            &reviewed,
            &answer,
            "init container \"landgate-init\" (spec.initContainers[0]) in image;",
        );
        assert_eq!(reviewed.dry_run, dry_run);
    }

    #[test]
    fn status_annotation_edit_is_refused() {
        let old = stored_pod();
        let mut new = old.clone();
        new["metadata"]["annotations"]["landgate.dev/status"] = json!("{\"version\":1}");
        let (reviewed, answer) = run(&update_review(old, new, None));
        assert_refused(&reviewed, &answer, "edits annotation landgate.dev/status");
    }

    #[test]
    fn app_image_update_is_admitted_unchanged() {
        let old = stored_pod();
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        let (reviewed, answer) = run(&update_review(old, new, None));
        assert_admitted_unchanged(
            &reviewed,
            &answer,
            "pod update: nothing landgate guards changed",
        );
    }

    #[test]
    fn unwrapped_pod_updates_are_admitted_unchanged() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": []}});
        let (reviewed, answer) = run(&update_review(pod.clone(), pod, None));
        assert_admitted_unchanged(
            &reviewed,
            &answer,
            "pod update: the pod is not wrapped by landgate",
        );
    }

    #[test]
    fn update_without_old_object_is_an_error() {
        let mut body = update_review(json!(null), stored_pod(), None);
        body["request"].as_object_mut().unwrap().remove("oldObject");
        let (reviewed, answer) = run(&body);
        assert_eq!(reviewed.outcome, ReviewOutcome::Error);
        assert_eq!(answer["response"]["allowed"], json!(false));
        assert_eq!(answer["response"]["status"]["code"], json!(400));
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains("oldObject"), "{message}");
    }

    #[rstest::rstest]
    #[case::status("UPDATE", Some("status"))]
    #[case::resize("UPDATE", Some("resize"))]
    #[case::delete("DELETE", None)]
    #[case::create_binding("CREATE", Some("binding"))]
    fn other_pod_requests_are_allowed_untouched(
        #[case] operation: &str,
        #[case] sub_resource: Option<&str>,
    ) {
        // Even with a change landgate would refuse on a plain update.
        let old = stored_pod();
        let mut new = old.clone();
        new["spec"]["initContainers"][0]["image"] = json!("tenant.example/evil:1");
        let mut body = update_review(old, new, sub_resource);
        body["request"]["operation"] = json!(operation);
        let (reviewed, answer) = run(&body);
        assert_eq!(reviewed.outcome, ReviewOutcome::Skipped);
        assert!(
            reviewed
                .reason
                .as_deref()
                .unwrap()
                .starts_with("not a pod creation or update"),
            "{:?}",
            reviewed.reason
        );
        assert_eq!(answer["response"]["allowed"], json!(true));
        assert!(answer["response"].get("patch").is_none());
    }

    #[test]
    fn unreadable_pod_is_denied_with_uid_echoed() {
        let (reviewed, answer) = run(&pod_review(
            "CREATE",
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": "nope"}}),
        ));
        assert_eq!(reviewed.outcome, ReviewOutcome::Error);
        assert_eq!(answer["response"]["allowed"], json!(false));
        assert_eq!(answer["response"]["status"]["code"], json!(400));
        assert_eq!(
            answer["response"]["uid"],
            json!("705ab4f5-6393-11e8-b7cc-42010a800002")
        );
    }

    #[test]
    fn wrong_api_version_is_a_bad_review() {
        let mut body = pod_review("CREATE", json!({}));
        body["apiVersion"] = json!("admission.k8s.io/v1beta1");
        let err = review(
            &Settings::default(),
            &no_annotations,
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("admissionReviewVersions"), "{err}");
    }

    #[test]
    fn malformed_json_is_a_bad_review() {
        let err = review(&Settings::default(), &no_annotations, b"{\"apiVersion\":").unwrap_err();
        assert!(matches!(err, BadReview::Malformed(_)), "{err}");
    }

    #[test]
    fn patch_is_base64() {
        let response = AdmissionResponse::invalid("x")
            .with_patch(json_patch::Patch(vec![]))
            .unwrap();
        let value: Value = serde_json::from_slice(&encode(response)).unwrap();
        assert_eq!(value["response"]["patch"], json!("W10="));
        assert_eq!(value["response"]["patchType"], json!("JSONPatch"));
    }
}
