//! What the registry said about the images a pod runs: the engine's input
//! from image resolution (the webhook's resolver looks them up; the engine
//! never does IO). An image the pod names but [`Images`] does not hold was
//! not looked up (`--no-resolve`, or resolution disabled): the engine then
//! behaves as it did before resolution existed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PodSpec;
use landgate_policy::layout::INIT_CONTAINER;

/// The parts of an image's config that decide what runs and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// The digest that pins what was looked up (`sha256:<64 hex>`): of the
    /// index for a multi-platform image, else of the manifest.
    pub digest: String,
    /// `config.Entrypoint` (empty when the image sets none).
    pub entrypoint: Vec<String>,
    /// `config.Cmd` (empty when the image sets none).
    pub cmd: Vec<String>,
    /// The `PATH` of `config.Env`, when the image sets one.
    pub path: Option<String>,
    /// `config.WorkingDir`, when set.
    pub working_dir: Option<String>,
    /// `config.User`, when set.
    pub user: Option<String>,
    /// For a multi-platform index whose platforms disagree on Entrypoint,
    /// Cmd or PATH: the platform whose config this is and what differs
    /// (`None` when every platform agrees, or the image is single-platform).
    pub platform_disagreement: Option<String>,
}

/// Why an image could not be resolved: the cause, for the refusal or
/// warning and for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupFailure {
    /// The lookup did not finish within `--resolve-timeout`.
    Timeout,
    /// The registry has no such repository, tag or digest.
    NotFound,
    /// The registry refused the credentials (or wanted some).
    Unauthorized,
    /// No connection, TLS failure, or an HTTP error from the registry.
    Unreachable,
    /// The reference, manifest or config is malformed, or names no Linux
    /// image.
    Invalid,
}

impl LookupFailure {
    /// A stable, short name (the `cause` metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::NotFound => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::Unreachable => "unreachable",
            Self::Invalid => "invalid",
        }
    }
}

impl fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer for one image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLookup {
    Resolved(Arc<ImageConfig>),
    Failed {
        cause: LookupFailure,
        /// What went wrong, for a person (names the registry and the
        /// reference where it helps).
        message: String,
    },
}

/// Lookups by the container's `image` exactly as the pod spells it.
pub type Images = BTreeMap<String, ImageLookup>;

/// The images the engine may need for `spec`: those of its init and app
/// containers, each once, in order (not landgate-init's, which is
/// landgate's own; not ephemeral containers', which are not wrapped).
pub fn images_of(spec: &PodSpec) -> Vec<String> {
    let mut images: Vec<String> = Vec::new();
    let init = spec.init_containers.iter().flatten();
    for c in init
        .filter(|c| c.name != INIT_CONTAINER)
        .chain(&spec.containers)
    {
        if let Some(image) = c.image.as_deref().filter(|i| !i.is_empty())
            && !images.iter().any(|seen| seen == image)
        {
            images.push(image.to_owned());
        }
    }
    images
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_of_lists_each_wrapped_image_once() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [
                {"name": "landgate-init", "image": "launcher:1"},
                {"name": "migrate", "image": "app:1"}
            ],
            "containers": [
                {"name": "app", "image": "app:1"},
                {"name": "proxy", "image": "envoy:1"},
                {"name": "no-image"}
            ],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}]
        }))
        .unwrap();
        assert_eq!(images_of(&spec), ["app:1", "envoy:1"]);
    }
}
