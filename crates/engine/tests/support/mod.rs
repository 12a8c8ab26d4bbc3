//! What the engine's integration tests share.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use landgate_engine::{Mutation, Outcome};
use landgate_policy::Policy;

/// A mutation with the pod it gives: the engine's patch applied to the input
/// (it must apply), since the engine itself never computes the mutated pod.
#[derive(Debug)]
#[allow(dead_code)] // each test binary reads its own fields
pub struct Run {
    pub outcome: Outcome,
    pub patch: json_patch::Patch,
    pub pod: Pod,
    pub policies: BTreeMap<String, Policy>,
    pub warnings: Vec<String>,
}

impl Run {
    /// `Err` names why the patch did not apply to `input`.
    pub fn of(input: &Pod, m: Mutation) -> Result<Self, String> {
        let pod = landgate_engine::patch::apply(input, &m.patch)
            .map_err(|e| format!("patch does not apply: {e}\n{:?}", m.patch))?;
        Ok(Self {
            outcome: m.outcome,
            patch: m.patch,
            pod,
            policies: m.policies,
            warnings: m.warnings,
        })
    }
}
