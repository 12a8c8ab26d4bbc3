//! RFC 6902 operations and JSON pointers, built without a JSON round trip of
//! the pod. Pointers come from tokens (jsonptr escapes `/` and `~` in
//! annotation keys as `~1` and `~0`).

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, PatchOperation, RemoveOperation};
use serde::Serialize;

use crate::error::MutateError;

#[derive(Default)]
pub(crate) struct Ops(pub(crate) Vec<PatchOperation>);

impl Ops {
    pub(crate) fn push(&mut self, op: PatchOperation) {
        self.0.push(op);
    }

    /// `add` sets an object member whether or not it exists, and inserts
    /// into an array.
    pub(crate) fn add(&mut self, path: PointerBuf, value: serde_json::Value) {
        self.0
            .push(PatchOperation::Add(AddOperation { path, value }));
    }
}

pub(crate) trait With {
    fn with(self, token: &str) -> Self;
}

impl With for PointerBuf {
    fn with(mut self, token: &str) -> Self {
        self.push_back(token);
        self
    }
}

/// A pointer from string tokens then index tokens (escaped by jsonptr: `/`
/// and `~` in annotation keys become `~1` and `~0`).
pub(crate) fn ptr<const N: usize, const M: usize>(
    names: [&str; N],
    indices: [usize; M],
) -> PointerBuf {
    let mut p = PointerBuf::from_tokens(names);
    for i in indices {
        p.push_back(Token::from(i));
    }
    p
}

/// `base` + names (empty names skipped) + indices.
pub(crate) fn at<const N: usize, const M: usize>(
    base: &PointerBuf,
    names: [&str; N],
    indices: [usize; M],
) -> PointerBuf {
    let mut p = base.clone();
    for name in names.into_iter().filter(|n| !n.is_empty()) {
        p.push_back(name);
    }
    for i in indices {
        p.push_back(Token::from(i));
    }
    p
}

/// Removes `indices` (ascending) from the list at `list` of length `len`;
/// the whole field when nothing would be left, as if it had never been set.
pub(crate) fn remove_items(ops: &mut Ops, list: PointerBuf, indices: &[usize], len: usize) {
    if indices.is_empty() {
        return;
    }
    if indices.len() == len {
        ops.push(PatchOperation::Remove(RemoveOperation { path: list }));
        return;
    }
    for &i in indices.iter().rev() {
        ops.push(PatchOperation::Remove(RemoveOperation {
            path: list.clone().with(&i.to_string()),
        }));
    }
}

pub(crate) fn remove_item(ops: &mut Ops, list: PointerBuf, index: usize, len: usize) {
    remove_items(ops, list, &[index], len);
}

/// The pod after `patch`, for what shows it (the tests, tools). Admission
/// never computes it: the API server applies the patch.
pub fn apply(
    pod: &k8s_openapi::api::core::v1::Pod,
    patch: &json_patch::Patch,
) -> Result<k8s_openapi::api::core::v1::Pod, String> {
    let mut doc = serde_json::to_value(pod).map_err(|e| e.to_string())?;
    json_patch::patch(&mut doc, patch).map_err(|e| e.to_string())?;
    serde_json::from_value(doc).map_err(|e| e.to_string())
}

/// A value landgate injects, as JSON. Cannot fail for the k8s-openapi types
/// used; reported as a landgate bug if it ever does.
pub(crate) fn to_value<T: Serialize + ?Sized>(
    value: &T,
    pod: &str,
) -> Result<serde_json::Value, MutateError> {
    serde_json::to_value(value).map_err(|e| MutateError::Internal {
        pod: pod.to_owned(),
        message: e.to_string(),
    })
}
