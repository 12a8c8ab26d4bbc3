//! Unwrapping: a pod whose later pass decides "skip" (a later webhook added
//! a container without `command`) gets every previous change reverted, so
//! it is never left half-wrapped.

use std::collections::BTreeMap;

use json_patch::PatchOperation;
use json_patch::RemoveOperation;
use json_patch::jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::Container;
use landgate_policy::env::ACTIVE as ACTIVE_ENV;
use landgate_policy::{POLICY_ENV, argv};

use crate::container::{exec_command_ptr, exec_handlers, last_path, strip_path};
use crate::inject::launcher_mount;
use crate::mutate::Mutation;
use crate::outcome::Outcome;
use crate::patch::{Ops, With, at, ptr, remove_item, remove_items};
use crate::read::Pass;
use crate::status::{NOT_SANDBOXED, PathEdit, STATUS_VERSION, Status, WrappedContainer};

impl Pass<'_> {
    /// Admits the pod unwrapped, recording why; on a pass after a wrapping
    /// one, undoes that pass first.
    pub(crate) fn skip(self, reason: String, warnings: Vec<String>) -> Mutation {
        let mut ops = Ops::default();
        if self.wrapped_before {
            // Undo the previous pass: a pod is never half-wrapped.
            for view in &self.views {
                if let Some(record) = self.record_of(&view.current.name) {
                    let base = ptr(["spec", view.list.json()], [view.index]);
                    unwrap_container(&mut ops, &base, view.current, record, &view.original);
                }
            }
            let init_len = self.spec.init_containers.as_ref().map_or(0, Vec::len);
            if let Some(pos) = self.init_pos {
                remove_item(&mut ops, ptr(["spec", "initContainers"], []), pos, init_len);
            }
            let volumes_len = self.spec.volumes.as_ref().map_or(0, Vec::len);
            if let Some(pos) = self.volume_pos {
                remove_item(&mut ops, ptr(["spec", "volumes"], []), pos, volumes_len);
            }
        }
        let status = Status {
            version: STATUS_VERSION,
            containers: BTreeMap::new(),
            skipped: Some(reason.clone()),
        };
        self.set_status(&mut ops, &status);
        self.set_profile_label(&mut ops, NOT_SANDBOXED);
        Mutation::new(ops, Outcome::Skipped(reason), BTreeMap::new(), warnings)
    }
}

/// Reverts what a previous pass did to a container.
fn unwrap_container(
    ops: &mut Ops,
    base: &PointerBuf,
    current: &Container,
    record: &WrappedContainer,
    original: &Container,
) {
    ops.add(
        at(base, ["command"], []),
        serde_json::json!(original.command.as_deref().unwrap_or_default()),
    );
    for (field, command) in exec_handlers(current) {
        if let Some(unwrapped) = argv::unwrap_exec(command) {
            ops.add(exec_command_ptr(base, field), serde_json::json!(unwrapped));
        }
    }
    let env = current.env.as_deref().unwrap_or_default();
    let path = last_path(env);
    let mut removals: Vec<usize> = env
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name == POLICY_ENV || e.name == ACTIVE_ENV)
        .map(|(i, _)| i)
        .collect();
    if let Some((i, var)) = path {
        match record.path {
            PathEdit::Added => removals.push(i),
            PathEdit::Prefixed => {
                let path = at(base, ["env"], [i]).with("value");
                match strip_path(var.value.as_deref().unwrap_or_default()) {
                    // An empty value is no value: the API server omits it.
                    "" => ops.push(PatchOperation::Remove(RemoveOperation { path })),
                    value => ops.add(path, serde_json::Value::String(value.to_owned())),
                }
            }
            PathEdit::Untouched => {}
        }
    }
    let mounts = current.volume_mounts.as_deref().unwrap_or_default();
    let mount_removals: Vec<usize> = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| **m == launcher_mount())
        .map(|(i, _)| i)
        .collect();
    removals.sort_unstable();
    remove_items(ops, at(base, ["env"], []), &removals, env.len());
    remove_items(
        ops,
        at(base, ["volumeMounts"], []),
        &mount_removals,
        mounts.len(),
    );
}
