//! Offline preview: manifests (Pods and workloads with a pod template, multi-
//! document YAML or JSON) in, what the webhook would do out.
//!
//! Workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
//! ReplicationController, CronJob) are previewed through their pod template,
//! like `istioctl kube-inject`; other objects (Services, ConfigMaps, …) pass
//! through unchanged so that `--output yaml` prints the whole manifest.
//! A `kind: List` is previewed item by item.

use std::collections::BTreeMap;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use landgate_policy::Policy;
use serde::Deserialize;

use landgate_engine::Outcome;
use landgate_engine::image::{self, Images};
use landgate_engine::mutate::{self, MutateError, NO_IMAGES, PodContext};
use landgate_engine::settings::Settings;

/// One previewed object.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreviewItem {
    pub kind: String,
    pub name: String,
    /// Shown as "wrapped" | "already-wrapped" | "skipped: <reason>".
    #[serde(rename = "verdict", serialize_with = "as_text")]
    pub outcome: Outcome,
    /// The patch, relative to the object given (so under /spec/template/...
    /// for workloads).
    pub patch: json_patch::Patch,
    /// The mutated object.
    pub object: serde_json::Value,
    pub policies: BTreeMap<String, Policy>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The mutated manifests, as multi-document YAML.
    Yaml,
    /// The JSON patch of each object.
    Patch,
    /// Each container's policy.
    Policy,
    /// Everything (PreviewItem list) as JSON.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("document {document}: cannot parse it as YAML or JSON: {message}")]
    Parse { document: usize, message: String },
    #[error(
        "document {document}: expected a Kubernetes object (a mapping with kind and metadata), found {found}"
    )]
    NotAnObject { document: usize, found: String },
    #[error("{kind} {name}: {field} is not a valid pod template: {message}")]
    InvalidTemplate {
        kind: String,
        name: String,
        field: String,
        message: String,
    },
    #[error("{kind} {name}: {source}")]
    Rejected {
        kind: String,
        name: String,
        source: Box<MutateError>,
    },
    #[error("cannot render the preview as {format}: {message}")]
    Render {
        format: &'static str,
        message: String,
    },
}

/// Where each kind keeps its pod template (JSON pointer tokens).
fn template_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&[]),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some(&["spec", "template"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

/// Parses `input` (YAML or JSON, possibly multi-document) and previews each
/// object, without looking images up.
pub fn preview(settings: &Settings, input: &str) -> Result<Vec<PreviewItem>, PreviewError> {
    Manifest::parse(input)?.preview(settings, NO_IMAGES, &|_| BTreeMap::new())
}

/// Parsed manifests: the objects of every document, `kind: List` items
/// taken one by one, each with its document number (for messages).
#[derive(Debug)]
pub struct Manifest(Vec<(usize, serde_json::Value)>);

impl Manifest {
    pub fn parse(input: &str) -> Result<Self, PreviewError> {
        let mut objects = Vec::new();
        for (i, doc) in documents(input)?.into_iter().enumerate() {
            let document = i + 1;
            match doc {
                serde_json::Value::Null => {}
                serde_json::Value::Object(_) => {
                    if doc.get("kind").and_then(|k| k.as_str()) == Some("List") {
                        let list = doc.get("items").and_then(|i| i.as_array());
                        for item in list.into_iter().flatten() {
                            objects.push((document, item.clone()));
                        }
                    } else {
                        objects.push((document, doc));
                    }
                }
                other => {
                    return Err(PreviewError::NotAnObject {
                        document,
                        found: describe(&other),
                    });
                }
            }
        }
        Ok(Self(objects))
    }

    /// The images of the pods and pod templates, each once: what to look up
    /// before [`Manifest::preview`]. Templates that do not parse are left
    /// to the preview, which names what is wrong with them.
    pub fn images(&self) -> Vec<String> {
        let mut images: Vec<String> = Vec::new();
        for (_, object) in &self.0 {
            let kind = object
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_default();
            let Some(template) = template_path(kind) else {
                continue;
            };
            let base = PointerBuf::from_tokens(template.iter().copied().chain(["spec"]));
            let Some(Ok(spec)) = object.pointer(base.as_str()).map(PodSpec::deserialize) else {
                continue;
            };
            for image in image::images_of(&spec) {
                if !images.contains(&image) {
                    images.push(image);
                }
            }
        }
        images
    }

    /// Previews each object, with what the registry said about `images`;
    /// namespace annotations come from a Namespace in the same manifests,
    /// else from `namespace_annotations` (the preview's
    /// `--namespace-annotations`, or the server's namespace cache).
    pub fn preview(
        self,
        settings: &Settings,
        images: &Images,
        namespace_annotations: &dyn Fn(&str) -> BTreeMap<String, String>,
    ) -> Result<Vec<PreviewItem>, PreviewError> {
        let in_file: BTreeMap<String, BTreeMap<String, String>> = self
            .0
            .iter()
            .filter(|(_, o)| o.get("kind").and_then(|k| k.as_str()) == Some("Namespace"))
            .filter_map(|(_, o)| {
                let name = o.pointer("/metadata/name")?.as_str()?.to_owned();
                let annotations = o
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.as_object())
                    .map(|a| {
                        a.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default();
                Some((name, annotations))
            })
            .collect();
        let layer = |namespace: &str| match in_file.get(namespace) {
            Some(annotations) => annotations.clone(),
            None => namespace_annotations(namespace),
        };
        self.0
            .into_iter()
            .map(|(document, object)| preview_object(settings, images, &layer, document, object))
            .collect()
    }
}

fn documents(input: &str) -> Result<Vec<serde_json::Value>, PreviewError> {
    let trimmed = input.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON: one or more concatenated values (YAML would refuse tabs).
        let mut docs = Vec::new();
        for (i, value) in serde_json::Deserializer::from_str(input)
            .into_iter::<serde_json::Value>()
            .enumerate()
        {
            let value = value.map_err(|e| PreviewError::Parse {
                document: i + 1,
                message: e.to_string(),
            })?;
            match value {
                serde_json::Value::Array(values) => docs.extend(values),
                value => docs.push(value),
            }
        }
        return Ok(docs);
    }
    serde_yaml_ng::Deserializer::from_str(input)
        .enumerate()
        .map(|(i, doc)| {
            serde_json::Value::deserialize(doc).map_err(|e| PreviewError::Parse {
                document: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

fn describe(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "nothing".into(),
        serde_json::Value::Bool(_) => "a boolean".into(),
        serde_json::Value::Number(_) => "a number".into(),
        serde_json::Value::String(_) => "a string".into(),
        serde_json::Value::Array(_) => "a list".into(),
        serde_json::Value::Object(_) => "a mapping".into(),
    }
}

fn preview_object(
    settings: &Settings,
    images: &Images,
    namespace_annotations: &dyn Fn(&str) -> BTreeMap<String, String>,
    document: usize,
    object: serde_json::Value,
) -> Result<PreviewItem, PreviewError> {
    let kind = object
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default()
        .to_owned();
    let name = object
        .pointer("/metadata/name")
        .or_else(|| object.pointer("/metadata/generateName"))
        .and_then(|n| n.as_str())
        .unwrap_or("(unnamed)")
        .to_owned();
    if kind.is_empty() {
        return Err(PreviewError::NotAnObject {
            document,
            found: "a mapping without kind".into(),
        });
    }
    let Some(template) = template_path(&kind) else {
        return Ok(PreviewItem {
            outcome: Outcome::Skipped(format!("{kind} has no pod template")),
            kind,
            name,
            patch: json_patch::Patch(Vec::new()),
            object,
            policies: BTreeMap::new(),
            warnings: Vec::new(),
        });
    };
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(|n| n.as_str())
        .unwrap_or("default")
        .to_owned();
    let base = PointerBuf::from_tokens(template.iter().copied());
    let invalid = |field: &str, message: String| PreviewError::InvalidTemplate {
        kind: kind.clone(),
        name: name.clone(),
        field: field.to_owned(),
        message,
    };
    let field = if template.is_empty() {
        "the pod".to_owned()
    } else {
        template.join(".")
    };
    let template_value = object
        .pointer(base.as_str())
        .ok_or_else(|| invalid(&field, "missing".into()))?;
    let pod = if template.is_empty() {
        serde_json::from_value::<Pod>(template_value.clone())
            .map_err(|e| invalid(&field, e.to_string()))?
    } else {
        // A template has metadata and spec like a pod; the name helps the
        // messages (the API server names the pods later).
        let metadata = template_value
            .get("metadata")
            .map(|m| serde_json::from_value::<ObjectMeta>(m.clone()))
            .transpose()
            .map_err(|e| invalid(&format!("{field}.metadata"), e.to_string()))?
            .unwrap_or_default();
        let spec = template_value
            .get("spec")
            .map(|s| serde_json::from_value::<PodSpec>(s.clone()))
            .transpose()
            .map_err(|e| invalid(&format!("{field}.spec"), e.to_string()))?;
        Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}-")),
                ..metadata
            },
            spec,
            status: None,
        }
    };

    let annotations = namespace_annotations(&namespace);
    let context = PodContext {
        namespace: &namespace,
        namespace_annotations: &annotations,
        images,
    };
    let mutation =
        mutate::mutate_pod(settings, context, &pod).map_err(|source| PreviewError::Rejected {
            kind: kind.clone(),
            name: name.clone(),
            source: Box::new(source),
        })?;

    // Re-root the engine's patch at the template; a template without
    // metadata needs it before annotations can be added.
    let mut ops = Vec::with_capacity(mutation.patch.0.len() + 1);
    let touches_metadata = mutation
        .patch
        .0
        .iter()
        .any(|op| op.path().as_str().starts_with("/metadata"));
    if !template.is_empty() && touches_metadata && template_value.get("metadata").is_none() {
        ops.push(PatchOperation::Add(AddOperation {
            path: base.concat(PointerBuf::from_tokens(["metadata"]).as_ref()),
            value: serde_json::json!({}),
        }));
    }
    for op in mutation.patch.0 {
        ops.push(reroot(&base, op));
    }
    let patch = json_patch::Patch(ops);
    let mut mutated = object;
    json_patch::patch(&mut mutated, &patch).map_err(|e| PreviewError::Rejected {
        kind: kind.clone(),
        name: name.clone(),
        source: Box::new(MutateError::Internal {
            pod: name.clone(),
            message: e.to_string(),
        }),
    })?;
    Ok(PreviewItem {
        outcome: mutation.outcome,
        kind,
        name,
        patch,
        object: mutated,
        policies: mutation.policies,
        warnings: mutation.warnings,
    })
}

fn as_text<S: serde::Serializer>(outcome: &Outcome, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(outcome)
}

fn reroot(base: &PointerBuf, op: PatchOperation) -> PatchOperation {
    let join = |p: &PointerBuf| base.concat(p);
    match op {
        PatchOperation::Add(mut o) => {
            o.path = join(&o.path);
            PatchOperation::Add(o)
        }
        PatchOperation::Remove(mut o) => {
            o.path = join(&o.path);
            PatchOperation::Remove(o)
        }
        PatchOperation::Replace(mut o) => {
            o.path = join(&o.path);
            PatchOperation::Replace(o)
        }
        PatchOperation::Move(mut o) => {
            o.path = join(&o.path);
            o.from = join(&o.from);
            PatchOperation::Move(o)
        }
        PatchOperation::Copy(mut o) => {
            o.path = join(&o.path);
            o.from = join(&o.from);
            PatchOperation::Copy(o)
        }
        PatchOperation::Test(mut o) => {
            o.path = join(&o.path);
            PatchOperation::Test(o)
        }
    }
}

/// Renders preview items for a terminal.
///
/// - `yaml`: every object (mutated or passed through), `---`-separated;
/// - `patch` / `policy`: one pretty JSON document per object with a pod
///   template (the patch array; the container → policy map), in input
///   order, so a single object gives exactly its patch or policies (`jq`
///   reads the stream);
/// - `json`: `{"items": [...]}`, as the HTTP `/preview` answers.
pub fn render(items: &[PreviewItem], format: OutputFormat) -> Result<String, PreviewError> {
    let json_error = |format| {
        move |e: serde_json::Error| PreviewError::Render {
            format,
            message: e.to_string(),
        }
    };
    let has_template = |item: &&PreviewItem| template_path(&item.kind).is_some();
    match format {
        OutputFormat::Yaml => {
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                let text =
                    serde_yaml_ng::to_string(&item.object).map_err(|e| PreviewError::Render {
                        format: "yaml",
                        message: e.to_string(),
                    })?;
                out.push_str(&text);
            }
            Ok(out)
        }
        OutputFormat::Patch => items
            .iter()
            .filter(has_template)
            .map(|item| serde_json::to_string_pretty(&item.patch).map_err(json_error("patch")))
            .collect::<Result<Vec<_>, _>>()
            .map(|docs| docs.join("\n")),
        OutputFormat::Policy => items
            .iter()
            .filter(has_template)
            .map(|item| serde_json::to_string_pretty(&item.policies).map_err(json_error("policy")))
            .collect::<Result<Vec<_>, _>>()
            .map(|docs| docs.join("\n")),
        OutputFormat::Json => serde_json::to_string_pretty(&serde_json::json!({ "items": items }))
            .map_err(json_error("json")),
    }
}
