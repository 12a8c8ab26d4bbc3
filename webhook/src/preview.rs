//! Offline preview: manifests (Pods and workloads with a pod template, multi-
//! document YAML or JSON) in, what the webhook would do out.
//!
//! PUBLIC API CONTRACT (the HTTP /preview handler and the CLI use it).

use std::collections::BTreeMap;

use landgate_launcher::policy::Policy;

use crate::mutate::MutateError;
use crate::settings::Settings;

/// One previewed object.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreviewItem {
    pub kind: String,
    pub name: String,
    /// "wrapped" | "already-wrapped" | "skipped: <reason>"
    pub verdict: String,
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
    #[error("todo {0}")]
    Todo(String),
    #[error("{kind} {name}: {source}")]
    Rejected {
        kind: String,
        name: String,
        source: MutateError,
    },
}

/// Parses `input` (YAML or JSON, possibly multi-document) and previews each object.
pub fn preview(settings: &Settings, input: &str) -> Result<Vec<PreviewItem>, PreviewError> {
    let _ = (settings, input);
    todo!("preview")
}

/// Renders preview items for a terminal.
pub fn render(items: &[PreviewItem], format: OutputFormat) -> Result<String, PreviewError> {
    let _ = (items, format);
    todo!("render")
}
