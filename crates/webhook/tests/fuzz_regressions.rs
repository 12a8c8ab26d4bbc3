//! Replays what the fuzz targets (`fuzz/`, `just fuzz`, nightly) found
//! interesting through the same properties, on the pinned stable toolchain:
//! the fuzzer finds, CI keeps. Inputs live in `fuzz/regressions/<target>/`:
//! raw bytes for the byte-level targets, and for the structure-aware ones
//! the JSON of what their model produced (see `fuzz/README.md` for how to
//! add some). A file named `crash-*` is a finding reported but not yet fixed.
#![allow(clippy::unwrap_used)] // a test: an unwrap that fails is the failure, with its message

mod fuzz_props;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use fuzz_props::{AnnotationCase, Checked, PodCase};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no regression inputs in {}",
        dir.display()
    );
    files
}

/// Runs `check` on every input of `target` and fails naming each input that
/// panics or violates its property.
fn replay(target: &str, check: impl Fn(&[u8]) -> Checked) {
    let files = inputs(target);
    let mut failures = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match panic::catch_unwind(AssertUnwindSafe(|| check(&bytes))) {
            Ok(Ok(())) => {}
            Ok(Err(violation)) => failures.push(format!("{name}: {violation}")),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{name}: panicked: {message}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {target} inputs fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not a stored case: {e}"))
}

#[test]
fn admission_review() {
    replay("admission_review", fuzz_props::admission_review);
}

#[test]
fn pod_model() {
    replay("pod_model", |bytes| {
        fuzz_props::pod_case(&from_json::<PodCase>(bytes)?).map(drop)
    });
}

#[test]
fn policy() {
    replay("policy", fuzz_props::policy);
}

#[test]
fn annotations() {
    replay("annotations", |bytes| {
        fuzz_props::annotation_case(&from_json::<AnnotationCase>(bytes)?)
    });
}

#[test]
fn status() {
    replay("status", fuzz_props::status);
}
