//! The `landgate.dev/status` annotation: what a previous pass did, read back
//! on reinvocation (see `reinvoke`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::derive;
use crate::patch::{Ops, ptr};
use crate::read::Pass;

/// The label that sums the status up for `kubectl get pods -L
/// landgate.dev/profile`: the profile every wrapped container runs under,
/// [`MIXED_PROFILES`] when they differ, [`NOT_SANDBOXED`] for a pod admitted
/// unwrapped. Written by landgate like the status; the annotation of the
/// same key is the setting, read from the pod and its namespace.
pub const PROFILE_LABEL: &str = derive::PROFILE;
/// [`PROFILE_LABEL`] of a pod whose containers run under different profiles.
pub const MIXED_PROFILES: &str = "mixed";
/// [`PROFILE_LABEL`] of a pod admitted unwrapped.
pub const NOT_SANDBOXED: &str = "none";

/// Version of the `landgate.dev/status` JSON.
pub const STATUS_VERSION: u32 = 1;

/// The `landgate.dev/status` annotation: `{"version":1,"containers":{"web":
/// {"hash":"sha256:…","path":"added"}}}` for a wrapped pod,
/// `{"version":1,"skipped":"<reason>"}` for a pod admitted unwrapped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub version: u32,
    /// Every wrapped container, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub containers: BTreeMap<String, WrappedContainer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// What landgate did to one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedContainer {
    /// `sha256:<hex>` over what landgate wrote into the container: its name,
    /// command, `LANDGATE_POLICY` and `PATH` (see [`container_hash`]).
    pub hash: String,
    pub path: PathEdit,
}

/// How landgate put the wrapper dir on the container's PATH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathEdit {
    /// The container had no PATH: landgate added `/landgate/bin:<default>`.
    Added,
    /// The container's own PATH value got `/landgate/bin:` in front.
    Prefixed,
    /// The container's PATH comes from `valueFrom` and was left alone.
    Untouched,
}

impl Status {
    pub(crate) fn to_annotation(&self) -> String {
        // Plain structs of strings and maps: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_else(|err| unreachable!("status serializes: {err}"))
    }
}

/// `sha256:<hex>` of what landgate wrote into a wrapped container.
pub fn container_hash(
    name: &str,
    command: &[String],
    policy: &str,
    path: Option<&str>,
    edit: PathEdit,
) -> String {
    // A JSON array, compact: the bytes every landgate version has hashed,
    // written straight into the hash (sha2 buffers its blocks).
    let mut hasher = Sha256::new();
    serde_json::to_writer(&mut hasher, &(name, command, policy, path, edit))
        .unwrap_or_else(|err| unreachable!("strings serialize: {err}"));
    let digest = hasher.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

/// Reads a `landgate.dev/status` annotation value; the error says what is wrong.
pub fn parse_status(raw: &str) -> Result<Status, String> {
    let status: Status =
        serde_json::from_str(raw).map_err(|e| format!("is not valid ({e}): {raw:?}"))?;
    if status.version != STATUS_VERSION {
        return Err(format!(
            "has version {}, this landgate writes version {STATUS_VERSION}",
            status.version
        ));
    }
    Ok(status)
}

impl Pass<'_> {
    /// Writes `status` into the annotation unless it is already there.
    pub(crate) fn set_status(&self, ops: &mut Ops, status: &Status) {
        if self.status.as_ref() == Some(status) {
            return;
        }
        let value = serde_json::Value::String(status.to_annotation());
        if self
            .pod
            .metadata
            .annotations
            .as_ref()
            .is_none_or(BTreeMap::is_empty)
        {
            ops.add(
                ptr(["metadata", "annotations"], []),
                serde_json::json!({ derive::STATUS: value }),
            );
        } else {
            ops.add(ptr(["metadata", "annotations", derive::STATUS], []), value);
        }
    }
}

impl Pass<'_> {
    /// Writes [`PROFILE_LABEL`] unless it already says `value`.
    pub(crate) fn set_profile_label(&self, ops: &mut Ops, value: &str) {
        let labels = self.pod.metadata.labels.as_ref();
        if labels
            .and_then(|l| l.get(PROFILE_LABEL))
            .map(String::as_str)
            == Some(value)
        {
            return;
        }
        if labels.is_none_or(BTreeMap::is_empty) {
            ops.add(
                ptr(["metadata", "labels"], []),
                serde_json::json!({ PROFILE_LABEL: value }),
            );
        } else {
            ops.add(
                ptr(["metadata", "labels", PROFILE_LABEL], []),
                serde_json::Value::String(value.to_owned()),
            );
        }
    }

    /// The [`PROFILE_LABEL`] value of the wrapped pod.
    pub(crate) fn profile_summary(&self) -> &'static str {
        let mut profiles = self.views.iter().map(|v| v.settings.profile);
        match profiles.next() {
            Some(first) if profiles.all(|p| p == first) => first.as_str(),
            Some(_) => MIXED_PROFILES,
            None => NOT_SANDBOXED,
        }
    }
}

/// Whether the pod has landgate-init and the launcher volume: only landgate
/// writes them into a pod of an opted-in namespace (it refuses those names
/// otherwise), and never half-wraps one. What guards a wrapped pod when its
/// status annotation is gone: annotations also change through the
/// `pods/status` subresource, which no webhook sees.
pub(crate) fn carries_launcher(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    use landgate_policy::layout::{INIT_CONTAINER, VOLUME};
    pod.spec.as_ref().is_some_and(|spec| {
        spec.init_containers
            .iter()
            .flatten()
            .any(|c| c.name == INIT_CONTAINER)
            && spec.volumes.iter().flatten().any(|v| v.name == VOLUME)
    })
}

/// The containers landgate wrapped in `pod`: those its status records, or,
/// when the record is gone but landgate-init and its volume are there,
/// every container but landgate-init (a pod is wrapped whole). Ephemeral
/// containers are never among them.
pub fn wrapped_containers(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<String> {
    let recorded = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(derive::STATUS))
        .and_then(|raw| parse_status(raw).ok())
        .map(|status| status.containers)
        .unwrap_or_default();
    if !recorded.is_empty() {
        return recorded.into_keys().collect();
    }
    if !carries_launcher(pod) {
        return Vec::new();
    }
    pod.spec
        .iter()
        .flat_map(|spec| {
            spec.init_containers
                .iter()
                .flatten()
                .chain(&spec.containers)
        })
        .map(|c| c.name.clone())
        .filter(|name| name != landgate_policy::layout::INIT_CONTAINER)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every wrapped pod's status records these hashes and every later pass
    /// checks them, so the bytes hashed must never change. The expected
    /// values are computed outside Rust: SHA-256 of the compact JSON array
    /// (Python's `json.dumps(…, separators=(',', ':'))`).
    #[test]
    fn container_hash_is_stable() {
        let command: Vec<String> = ["/landgate/landgate", "exec", "--", "/app/$(X)"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            container_hash(
                "web",
                &command,
                r#"{"v":1,"fs":{"rw":["/tmp"]}}"#,
                Some("/landgate/bin:/usr/bin"),
                PathEdit::Added,
            ),
            "sha256:307b7733630b6ccf5f59e4c7aeee2e1bfe1b468c209dd9db551984c4c6af1e70"
        );
        assert_eq!(
            container_hash("w", &[], "{}", None, PathEdit::Untouched),
            "sha256:368957b592b402e98a5589cfc97e4c3467b344795617fa2b8dcf36cf214fcd0e"
        );
    }
}
