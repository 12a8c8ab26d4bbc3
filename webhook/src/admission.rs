//! AdmissionReview in, AdmissionResponse out. Transport-free: the server
//! hands it bytes and writes back what it returns.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use crate::mutate::{self, PodContext, Verdict};
use crate::settings::Settings;

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

fn answer(
    settings: &Settings,
    namespace_annotations: &dyn Fn(&str) -> BTreeMap<String, String>,
    request: &AdmissionRequest<DynamicObject>,
    reviewed: &mut Reviewed,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let is_pod = request.kind.group.is_empty()
        && request.kind.version == "v1"
        && request.kind.kind == "Pod"
        && request.sub_resource.is_none();
    if !is_pod || request.operation != Operation::Create {
        reviewed.reason = Some(format!(
            "not a pod creation ({:?} {})",
            request.operation, request.kind.kind
        ));
        return response;
    }
    let Some(object) = &request.object else {
        reviewed.outcome = ReviewOutcome::Error;
        reviewed.reason = Some("CREATE review without an object".into());
        return deny(
            response,
            400,
            "BadRequest",
            "admission request for a pod CREATE carries no object",
        );
    };
    let pod: Pod = match serde_json::to_value(object).and_then(serde_json::from_value) {
        Ok(pod) => pod,
        Err(err) => {
            reviewed.outcome = ReviewOutcome::Error;
            reviewed.reason = Some(format!("object is not a valid Pod: {err}"));
            return deny(
                response,
                400,
                "BadRequest",
                format!("landgate could not read the pod in the admission request: {err}"),
            );
        }
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
    let annotations = namespace_annotations(&namespace);
    let context = PodContext {
        namespace: &namespace,
        namespace_annotations: &annotations,
    };

    match mutate::mutate_pod(settings, context, &pod) {
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

    #[test]
    fn pod_updates_are_allowed_untouched() {
        let (reviewed, answer) = run(&pod_review(
            "UPDATE",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": []}}),
        ));
        assert_eq!(reviewed.outcome, ReviewOutcome::Skipped);
        assert_eq!(answer["response"]["allowed"], json!(true));
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
