//! AdmissionReview in, AdmissionResponse out, transport-free: the server
//! hands it bytes and writes back [`Reviewed::body`].
//!
//! The review is deserialised once, straight into typed Pods, and the answer
//! serialised once. Only a review whose pod does not deserialise (a kind that
//! is not a Pod, or a pod landgate cannot read) is parsed a second time,
//! generically, to answer it properly.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Resource};
use landgate_engine::ephemeral::{self, Ephemeral};
use landgate_engine::image::Images;
use landgate_engine::mutate::NO_IMAGES;
use landgate_engine::settings::Settings;
use landgate_engine::{Mutation, Outcome, PodContext, mutate_pod, update, validate_pod};
use serde::Serialize;
use serde_json::value::RawValue;

/// The only AdmissionReview version the webhook registers for.
const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";

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

/// The answer to one review, with what the log line needs.
#[derive(Debug)]
pub struct Reviewed {
    pub response: AdmissionResponse,
    pub outcome: Outcome,
    pub uid: String,
    pub namespace: String,
    /// Pod name, or `generateName*` for pods named by the API server.
    pub name: String,
    pub dry_run: bool,
    /// A pod CREATE (not an update, not another kind).
    pub creates: bool,
    /// The pod's controller (or first owner), for Events about it.
    pub owner: Option<OwnerReference>,
    /// For `kubectl exec` / `attach` (CONNECT): how it was decided, for the
    /// metric and the audit line.
    pub connect: Option<crate::connect::Audit>,
}

impl Reviewed {
    /// The AdmissionReview response body: the one serialisation of the
    /// answer.
    pub fn body(&self) -> Vec<u8> {
        encode(&self.response)
    }
}

/// A namespace's `landgate.dev/*` annotations, or `None` when the
/// namespace is unknown (not in the cache yet): the pod is then refused, so
/// that no namespace floor is skipped.
pub type NamespaceLookup = dyn Fn(&str) -> Option<BTreeMap<String, String>> + Send + Sync;

/// Which of landgate's two webhooks a review was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    /// `/mutate`: wraps a pod it creates ([`mutate_pod`]).
    Mutating,
    /// `/validate`: called after every mutating webhook; admits a pod it
    /// creates only if it is wrapped as its status records, or should not
    /// be ([`validate_pod`]). Never patches.
    Validating,
}

impl Webhook {
    /// The path it is served on, and the `webhook` label of its metrics.
    pub fn path(self) -> &'static str {
        match self {
            Self::Mutating => "/mutate",
            Self::Validating => "/validate",
        }
    }
}

/// Answers one AdmissionReview body for the mutating webhook, without
/// looking images up.
pub fn review(
    settings: &Settings,
    namespace_annotations: &NamespaceLookup,
    body: &[u8],
) -> Result<Reviewed, BadReview> {
    Ok(parse(body)?.answer(
        Webhook::Mutating,
        settings,
        namespace_annotations,
        NO_IMAGES,
    ))
}

/// An AdmissionReview read, not answered yet: the server looks up the
/// images of the pod it creates ([`Parsed::created_pod`]) in between.
pub struct Parsed(pub(crate) Request);

// Not boxed: built once per review and moved at most once, so the size
// difference costs nothing a box would save.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Request {
    /// The usual case: the object deserialised straight into a Pod.
    Typed(AdmissionRequest<Pod>),
    /// A kind that is not a Pod, or a pod landgate cannot read: parsed a
    /// second time, generically, to answer it properly.
    Dynamic(AdmissionRequest<DynamicObject>),
}

/// Reads one AdmissionReview body.
pub fn parse(body: &[u8]) -> Result<Parsed, BadReview> {
    let request = match serde_json::from_slice::<AdmissionReview<Pod>>(body) {
        Ok(review) => Request::Typed(request_of(review)?),
        Err(_) => {
            let review: AdmissionReview<DynamicObject> =
                serde_json::from_slice(body).map_err(BadReview::Malformed)?;
            Request::Dynamic(request_of(review)?)
        }
    };
    Ok(Parsed(request))
}

impl Parsed {
    /// The pod this review creates, and its namespace, when the engine will
    /// judge it: the images worth looking up before [`Parsed::answer`].
    pub fn created_pod(&self) -> Option<(&Pod, &str)> {
        match &self.0 {
            Request::Typed(request) if matches!(Review::of(request), Some(Review::Create)) => {
                let pod = request.object.as_ref()?;
                Some((pod, request.namespace.as_deref().unwrap_or_default()))
            }
            _ => None,
        }
    }

    /// The pod `kubectl debug` adds ephemeral containers to, its namespace,
    /// and the images of those it adds: what the mutating webhook looks up
    /// before [`Parsed::answer`].
    pub fn debugged_pod(&self) -> Option<(&Pod, &str, Vec<String>)> {
        let Request::Typed(request) = &self.0 else {
            return None;
        };
        if !matches!(Review::of(request), Some(Review::Debug)) {
            return None;
        }
        let (pod, old) = (request.object.as_ref()?, request.old_object.as_ref()?);
        let images = ephemeral::images_to_resolve(old, pod);
        Some((
            pod,
            request.namespace.as_deref().unwrap_or_default(),
            images,
        ))
    }

    /// Answers it for `webhook`, with what the registry said about the
    /// pod's images.
    pub fn answer(
        &self,
        webhook: Webhook,
        settings: &Settings,
        namespace_annotations: &NamespaceLookup,
        images: &Images,
    ) -> Reviewed {
        match &self.0 {
            Request::Typed(request) => {
                let (response, outcome) = answer(
                    webhook,
                    settings,
                    namespace_annotations,
                    images,
                    request,
                    |object, which| object.map(Cow::Borrowed).ok_or_else(|| missing(which)),
                );
                reviewed(request, response, outcome)
            }
            Request::Dynamic(request) => {
                let (response, outcome) = answer(
                    webhook,
                    settings,
                    namespace_annotations,
                    images,
                    request,
                    read_pod,
                );
                reviewed(request, response, outcome)
            }
        }
    }
}

fn request_of<T: Resource>(review: AdmissionReview<T>) -> Result<AdmissionRequest<T>, BadReview> {
    if review.types.api_version != ADMISSION_API_VERSION {
        return Err(BadReview::WrongApiVersion(review.types.api_version));
    }
    review.try_into().map_err(|_| BadReview::MissingRequest)
}

pub(crate) fn reviewed<T: Resource>(
    request: &AdmissionRequest<T>,
    response: AdmissionResponse,
    outcome: Outcome,
) -> Reviewed {
    let name = match request.object.as_ref().map(Resource::meta) {
        _ if !request.name.is_empty() => request.name.clone(),
        Some(meta) => match (&meta.name, &meta.generate_name) {
            (Some(name), _) => name.clone(),
            (None, Some(prefix)) => format!("{prefix}*"),
            (None, None) => String::new(),
        },
        None => String::new(),
    };
    let owners = request
        .object
        .as_ref()
        .and_then(|object| object.meta().owner_references.as_deref())
        .unwrap_or_default();
    let owner = owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| owners.first())
        .cloned();
    Reviewed {
        response,
        outcome,
        uid: request.uid.clone(),
        namespace: request.namespace.clone().unwrap_or_default(),
        name,
        dry_run: request.dry_run,
        creates: matches!(Review::of(request), Some(Review::Create)),
        owner,
        connect: None,
    }
}

/// What the webhook does with a request, by operation and subresource.
enum Review {
    /// A pod CREATE: wrap it ([`mutate_pod`]).
    Create,
    /// A pod UPDATE, plain or through `pods/ephemeralcontainers` (which
    /// carries the whole Pod as object and oldObject): refuse what would
    /// reach the sandbox ([`update::check_update`]).
    Update,
    /// `kubectl debug`: an UPDATE of `pods/ephemeralcontainers`. The
    /// mutating webhook wraps the ephemeral containers it adds
    /// ([`Ephemeral::wrap`]); the validating one judges it as any update.
    Debug,
}

impl Review {
    fn of<T: Resource>(request: &AdmissionRequest<T>) -> Option<Self> {
        let is_pod = request.kind.group.is_empty()
            && request.kind.version == "v1"
            && request.kind.kind == "Pod";
        if !is_pod {
            return None;
        }
        match (&request.operation, request.sub_resource.as_deref()) {
            (Operation::Create, None) => Some(Self::Create),
            (Operation::Update, None) => Some(Self::Update),
            (Operation::Update, Some(EPHEMERAL_CONTAINERS)) => Some(Self::Debug),
            _ => None,
        }
    }
}

/// The subresource `kubectl debug` patches.
const EPHEMERAL_CONTAINERS: &str = "ephemeralcontainers";

/// The answer to one request, and how it ended. `read` gives the pod in the
/// request's `object` or `oldObject` (named by its second argument), or the
/// message for the denial.
pub fn answer<'r, T: Resource>(
    webhook: Webhook,
    settings: &Settings,
    namespace_annotations: &NamespaceLookup,
    images: &Images,
    request: &'r AdmissionRequest<T>,
    read: impl Fn(Option<&'r T>, &str) -> Result<Cow<'r, Pod>, String>,
) -> (AdmissionResponse, Outcome) {
    let response = AdmissionResponse::from(request);
    let Some(kind) = Review::of(request) else {
        let why = format!(
            "not a pod creation or update ({:?} {}{})",
            request.operation,
            request.kind.kind,
            request
                .sub_resource
                .as_deref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default()
        );
        return (response, Outcome::Passed(why));
    };
    let pod = match read(request.object.as_ref(), "object") {
        Ok(pod) => pod,
        Err(message) => return unreadable(response, message),
    };
    // A pod's namespace is the request's; the object often leaves it empty.
    let namespace = request.namespace.as_deref().unwrap_or_default();
    match kind {
        Review::Create => {
            let Some(annotations) = namespace_annotations(namespace) else {
                return refuse(
                    response,
                    "namespace-unknown",
                    format!(
                        "namespace {namespace:?} is not in landgate's namespace cache yet, so its landgate.dev/* floors cannot be applied; the pod is refused rather than judged without them: retry in a few seconds"
                    ),
                );
            };
            let context = PodContext {
                namespace,
                namespace_annotations: &annotations,
                images,
            };
            match webhook {
                Webhook::Mutating => wrap(settings, context, &pod, response),
                Webhook::Validating => validate(settings, context, &pod, response),
            }
        }
        Review::Update | Review::Debug => {
            let Some(annotations) = namespace_annotations(namespace) else {
                return refuse(
                    response,
                    "namespace-unknown",
                    format!(
                        "namespace {namespace:?} is not in landgate's namespace cache yet, so its landgate.dev/* settings cannot be applied to this update: retry in a few seconds"
                    ),
                );
            };
            let old = match read(request.old_object.as_ref(), "oldObject") {
                Ok(old) => old,
                Err(message) => return unreadable(response, message),
            };
            let context = PodContext {
                namespace,
                namespace_annotations: &annotations,
                images,
            };
            match (kind, webhook) {
                (Review::Debug, Webhook::Mutating) => {
                    debug(settings, context, &old, &pod, response)
                }
                _ => guard(settings, context, &old, &pod, response),
            }
        }
    }
}

/// A pod UPDATE: admitted unchanged, or refused; never patched.
fn guard(
    settings: &Settings,
    context: PodContext<'_>,
    old: &Pod,
    pod: &Pod,
    response: AdmissionResponse,
) -> (AdmissionResponse, Outcome) {
    match update::check_update(settings, context, old, pod) {
        Ok(admitted) => (response, Outcome::Passed(admitted.reason().to_owned())),
        Err(err) => refuse(response, err.reason(), err.to_string()),
    }
}

/// `kubectl debug` on the mutating webhook: the ephemeral containers it
/// adds to a wrapped pod, wrapped (or refused).
fn debug(
    settings: &Settings,
    context: PodContext<'_>,
    old: &Pod,
    pod: &Pod,
    response: AdmissionResponse,
) -> (AdmissionResponse, Outcome) {
    let containers = match Ephemeral::read(settings, context, pod) {
        Ok(Some(containers)) => containers,
        Ok(None) => {
            let why = "kubectl debug: the pod is not wrapped by landgate".to_owned();
            return (response, Outcome::Passed(why));
        }
        Err(err) => return refuse(response, err.reason(), err.to_string()),
    };
    let mutation = match containers.wrap(old, context.images) {
        Ok(mutation) => mutation,
        Err(err) => return refuse(response, err.reason(), err.to_string()),
    };
    patched(response, mutation)
}

/// A pod CREATE as it will be stored: admitted unchanged, or refused; never
/// patched. The mutating webhook's warnings are not repeated.
fn validate(
    settings: &Settings,
    context: PodContext<'_>,
    pod: &Pod,
    response: AdmissionResponse,
) -> (AdmissionResponse, Outcome) {
    match validate_pod(settings, context, pod) {
        Outcome::Refused { reason, message } => refuse(response, reason, message),
        outcome => (response, outcome),
    }
}

/// A pod CREATE: the engine's patch, or its refusal.
fn wrap(
    settings: &Settings,
    context: PodContext<'_>,
    pod: &Pod,
    response: AdmissionResponse,
) -> (AdmissionResponse, Outcome) {
    match mutate_pod(settings, context, pod) {
        Ok(mutation) => patched(response, mutation),
        Err(err) => refuse(response, err.reason(), err.to_string()),
    }
}

/// The response carrying the engine's patch and warnings.
fn patched(response: AdmissionResponse, mutation: Mutation) -> (AdmissionResponse, Outcome) {
    let mut response = response;
    if !mutation.warnings.is_empty() {
        response.warnings = Some(mutation.warnings);
    }
    if mutation.patch.0.is_empty() {
        return (response, mutation.outcome);
    }
    match response.clone().with_patch(mutation.patch) {
        Ok(patched) => (patched, mutation.outcome),
        Err(err) => {
            let message = format!("landgate could not encode its patch: {err}");
            (
                deny(response, 500, "InternalError", &message),
                Outcome::Failed(message),
            )
        }
    }
}

fn missing(which: &str) -> String {
    format!("the admission request for a pod carries no {which}")
}

/// The pod in a generically parsed `object` or `oldObject` (named by
/// `which`); the error is the message for the denial. Only reached when the
/// typed parse failed.
fn read_pod<'r>(object: Option<&'r DynamicObject>, which: &str) -> Result<Cow<'r, Pod>, String> {
    let object = object.ok_or_else(|| missing(which))?;
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map(Cow::Owned)
        .map_err(|err| {
            format!("landgate could not read the pod in the admission request's {which}: {err}")
        })
}

pub(crate) fn refuse(
    response: AdmissionResponse,
    reason: &'static str,
    message: String,
) -> (AdmissionResponse, Outcome) {
    (
        deny(response, 403, "Forbidden", &message),
        Outcome::Refused { reason, message },
    )
}

/// A request whose pod cannot be read: the webhook cannot judge it.
pub(crate) fn unreadable(
    response: AdmissionResponse,
    message: String,
) -> (AdmissionResponse, Outcome) {
    (
        deny(response, 400, "BadRequest", &message),
        Outcome::Failed(message),
    )
}

fn deny(response: AdmissionResponse, code: u16, reason: &str, message: &str) -> AdmissionResponse {
    let mut response = response.deny(message);
    response.result.code = code;
    response.result.reason = reason.to_owned();
    response
}

/// The AdmissionReview around a response, as the API server reads it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewBody<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: ResponseBody<'a>,
}

/// kube-core models `patch` as bytes, which serde writes as an array of
/// numbers; the API contract (Go's `[]byte`) is a base64 string. Mirroring
/// the response here writes it right the first time.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseBody<'a> {
    uid: &'a str,
    allowed: bool,
    status: &'a kube::core::Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    audit_annotations: &'a std::collections::HashMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a Vec<String>>,
}

fn encode(response: &AdmissionResponse) -> Vec<u8> {
    let patch = response.patch.as_deref().map(base64_string);
    let size = patch.as_ref().map_or(0, |p| p.get().len()) + 1024;
    let body = ReviewBody {
        api_version: &response.types.api_version,
        kind: &response.types.kind,
        response: ResponseBody {
            uid: &response.uid,
            allowed: response.allowed,
            status: &response.result,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            audit_annotations: &response.audit_annotations,
            warnings: response.warnings.as_ref(),
        },
    };
    // The patch and room for the rest, written once.
    let mut out = Vec::with_capacity(size);
    // Strings, numbers and maps of strings: serialisation cannot fail.
    serde_json::to_writer(&mut out, &body)
        .unwrap_or_else(|err| unreachable!("AdmissionReview serializes: {err}"));
    out
}

/// `bytes` as a base64 JSON string that serde_json writes out verbatim. The
/// base64 alphabet needs no escaping; written as a `String`, each of its
/// bytes went through serde_json's escape loop (two thirds of the cost of
/// the response body). `RawValue::from_string` still checks the text, with
/// a fast scan: a quarter of what the escape loop cost.
fn base64_string(bytes: &[u8]) -> Box<RawValue> {
    let mut quoted = String::with_capacity(bytes.len().div_ceil(3) * 4 + 2);
    quoted.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut quoted);
    quoted.push('"');
    RawValue::from_string(quoted)
        .unwrap_or_else(|err| unreachable!("a base64 string is a JSON string: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn no_annotations(_: &str) -> Option<BTreeMap<String, String>> {
        Some(BTreeMap::new())
    }

    /// A namespace the cache does not know yet is refused, not judged
    /// without its floors.
    #[test]
    fn a_pod_in_a_namespace_not_cached_yet_is_refused() {
        let body = include_bytes!("../../../tests/fixtures/admission/pod-create.json");
        let reviewed = review(&Settings::default(), &|_| None, body).unwrap();
        assert!(!reviewed.response.allowed);
        let message = &reviewed.response.result.message;
        assert!(
            message.contains("not in landgate's namespace cache"),
            "{message}"
        );
        assert!(matches!(reviewed.outcome, Outcome::Refused { .. }));
    }

    fn run(body: &Value) -> (Reviewed, Value) {
        let reviewed = review(
            &Settings::default(),
            &no_annotations,
            &serde_json::to_vec(body).unwrap(),
        )
        .unwrap();
        let answer: Value = serde_json::from_slice(&reviewed.body()).unwrap();
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
        assert!(
            matches!(reviewed.outcome, Outcome::Passed(_)),
            "{:?}",
            reviewed.outcome
        );
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
            images: landgate_engine::mutate::NO_IMAGES,
        };
        let mutation = mutate_pod(&Settings::default(), context, &pod).unwrap();
        assert_eq!(mutation.outcome, Outcome::Wrapped);
        serde_json::to_value(landgate_engine::patch::apply(&pod, &mutation.patch).unwrap()).unwrap()
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
        assert!(
            matches!(reviewed.outcome, Outcome::Refused { .. }),
            "{:?}",
            reviewed.outcome
        );
        assert_eq!(answer["response"]["allowed"], json!(false));
        assert_eq!(answer["response"]["status"]["code"], json!(403));
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
        assert!(answer["response"].get("patch").is_none());
    }

    fn assert_admitted_unchanged(reviewed: &Reviewed, answer: &Value, reason: &str) {
        assert_eq!(reviewed.outcome, Outcome::Passed(reason.to_owned()));
        assert_eq!(answer["response"]["allowed"], json!(true));
        assert!(answer["response"].get("patch").is_none());
        assert!(reviewed.response.patch.is_none());
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

    /// kubectl debug: the mutating webhook wraps the debug container (its
    /// patch touches nothing but it); the validating one refuses it
    /// unwrapped and admits it wrapped; under the namespace's `allow` both
    /// leave it as it is.
    #[test]
    fn plain_ephemeral_container_is_wrapped_and_verified() {
        let old = stored_pod();
        let new = with_debugger(&old, json!(null));
        let body = update_review(old.clone(), new, Some("ephemeralcontainers"));
        let (reviewed, answer) = run(&body);
        assert_eq!(reviewed.outcome, Outcome::Wrapped);
        let patch: json_patch::Patch = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                answer["response"]["patch"].as_str().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        for op in &patch.0 {
            let path = op.path().to_string();
            assert!(path.starts_with("/spec/ephemeralContainers/0/"), "{path}");
        }

        let validate = |namespace: &NamespaceLookup, body: &Value| {
            parse(&serde_json::to_vec(body).unwrap()).unwrap().answer(
                Webhook::Validating,
                &Settings::default(),
                namespace,
                NO_IMAGES,
            )
        };
        let unwrapped = validate(&no_annotations, &body);
        let answer: Value = serde_json::from_slice(&unwrapped.body()).unwrap();
        assert_refused(&unwrapped, &answer, "its command does not start with");
        let mut wrapped = body.clone();
        json_patch::patch(&mut wrapped["request"]["object"], &patch).unwrap();
        let admitted = validate(&no_annotations, &wrapped);
        assert!(
            matches!(admitted.outcome, Outcome::Passed(_)),
            "{:?}",
            admitted.outcome
        );

        let allow = |_: &str| {
            Some(BTreeMap::from([(
                "landgate.dev/exec".to_owned(),
                "allow".to_owned(),
            )]))
        };
        let reviewed = review(
            &Settings::default(),
            &allow,
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
        assert!(reviewed.response.patch.is_none());
        assert!(
            matches!(&reviewed.outcome, Outcome::Skipped(why) if why.contains("unsandboxed")),
            "{:?}",
            reviewed.outcome
        );
        let answer: Value = serde_json::from_slice(&validate(&allow, &body).body()).unwrap();
        assert_eq!(answer["response"]["allowed"], json!(true));
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
    fn wrapped_container_image_update_is_refused() {
        let old = stored_pod();
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        let (reviewed, answer) = run(&update_review(old, new, None));
        assert_refused(
            &reviewed,
            &answer,
            "changes the image of container \"web\" (spec.containers[0].image)",
        );
    }

    #[test]
    fn other_updates_of_a_wrapped_pod_are_admitted_unchanged() {
        let old = stored_pod();
        let mut new = old.clone();
        new["spec"]["activeDeadlineSeconds"] = json!(60);
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
        assert!(
            matches!(reviewed.outcome, Outcome::Failed(_)),
            "{:?}",
            reviewed.outcome
        );
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
        assert!(
            matches!(reviewed.outcome, Outcome::Passed(_)),
            "{:?}",
            reviewed.outcome
        );
        assert!(
            reviewed
                .outcome
                .reason()
                .unwrap()
                .starts_with("not a pod creation or update"),
            "{:?}",
            reviewed.outcome
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
        assert!(
            matches!(reviewed.outcome, Outcome::Failed(_)),
            "{:?}",
            reviewed.outcome
        );
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
        let value: Value = serde_json::from_slice(&encode(&response)).unwrap();
        assert_eq!(value["response"]["patch"], json!("W10="));
        assert_eq!(value["response"]["patchType"], json!("JSONPatch"));
    }

    /// The body byte for byte, with a patch whose base64 has `+` and `/`
    /// (written verbatim, not escaped), and without a patch: `patch` and
    /// `patchType` come together or not at all.
    #[test]
    fn body_bytes() {
        let patch = json_patch::Patch(vec![json_patch::PatchOperation::Add(
            json_patch::AddOperation {
                path: json_patch::jsonptr::PointerBuf::from_tokens(["a"]),
                value: json!("\u{fbff}>?"),
            },
        )]);
        let patched = AdmissionResponse::invalid("x").with_patch(patch).unwrap();
        let text = String::from_utf8(encode(&patched)).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(patched.patch.as_ref().unwrap());
        assert!(b64.contains('+') && b64.contains('/'), "{b64}");
        let expected = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"","allowed":false,"status":{},"patch":"{b64}","patchType":"JSONPatch"}}}}"#,
            serde_json::to_string(&patched.result).unwrap()
        );
        assert_eq!(text, expected);
        let plain = String::from_utf8(encode(&AdmissionResponse::invalid("x"))).unwrap();
        assert!(!plain.contains("patch"), "{plain}");
    }
}
