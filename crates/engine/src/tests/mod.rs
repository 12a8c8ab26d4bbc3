//! Tests of the whole engine (`mutate_pod`); the phases' own tests sit
//! beside them.

mod ephemeral;
mod escapes;
mod exec;
mod floors;
mod images;
mod mutate;
mod validate;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use landgate_policy::Policy;

use crate::mutate::{Mutation, Outcome};

/// A mutation with the pod it gives: the patch applied to the input (it
/// must apply).
#[derive(Debug)]
struct Run {
    outcome: Outcome,
    patch: json_patch::Patch,
    pod: Pod,
    policies: BTreeMap<String, Policy>,
    warnings: Vec<String>,
}

impl Run {
    fn of(input: &Pod, m: Mutation) -> Self {
        let pod = crate::patch::apply(input, &m.patch)
            .unwrap_or_else(|e| panic!("the patch must apply to the pod: {e}"));
        Self {
            outcome: m.outcome,
            patch: m.patch,
            pod,
            policies: m.policies,
            warnings: m.warnings,
        }
    }
}
