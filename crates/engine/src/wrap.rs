//! Wrapping: each container's command, exec handlers, PATH and env, the
//! launcher mount, landgate-init and the volume, as patch operations on the
//! pod as it came (no copy of the pod is patched here).

use std::collections::BTreeMap;

use json_patch::jsonptr::PointerBuf;
use json_patch::{MoveOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{Container, EnvVar};
use landgate_policy::layout::INIT_CONTAINER;
use landgate_policy::{POLICY_ENV, argv, env};

use crate::container::{
    active_marker, env_var, is_active_marker, kubelet_literal, last_path, prefix_exec_handlers,
    prefixed_path,
};
use crate::decide::is_pinned;
use crate::derive;
use crate::error::MutateError;
use crate::inject::{init_container, launcher_mount, launcher_volume};
use crate::mutate::Mutation;
use crate::outcome::Outcome;
use crate::patch::{Ops, With, at, ptr, to_value};
use crate::read::{List, Pass, View};
use crate::status::{PathEdit, STATUS_VERSION, Status, WrappedContainer, container_hash};

impl Pass<'_> {
    /// Wraps every container (or, on a later pass, those added since and
    /// the policies of those wrapped before) and records them in the status.
    pub(crate) fn wrap(self, mut warnings: Vec<String>) -> Result<Mutation, MutateError> {
        self.check_reserved()?;
        let mut ops = Ops::default();
        let init_containers_len = self.spec.init_containers.as_ref().map_or(0, Vec::len);

        // landgate-init first: containers wrapped below need the launcher.
        let init_index_shift: Box<dyn Fn(usize) -> usize> = match self.init_pos {
            Some(pos) if self.wrapped_before => {
                if pos != 0 {
                    ops.push(PatchOperation::Move(MoveOperation {
                        from: ptr(["spec", "initContainers"], [pos]),
                        path: ptr(["spec", "initContainers"], [0]),
                    }));
                }
                if let Some((rebuilt, differing)) = self.rebuilt_init_container() {
                    warnings.push(format!(
                        "{INIT_CONTAINER} differed from what landgate injects (its {}) and was rebuilt",
                        differing.join(", ")
                    ));
                    ops.push(PatchOperation::Replace(ReplaceOperation {
                        path: ptr(["spec", "initContainers"], [0]),
                        value: to_value(&rebuilt, &self.label)?,
                    }));
                }
                Box::new(move |i| if i < pos { i + 1 } else { i })
            }
            _ => {
                let init = to_value(&init_container(self.settings, self.spec), &self.label)?;
                if init_containers_len == 0 {
                    ops.add(
                        ptr(["spec", "initContainers"], []),
                        serde_json::json!([init]),
                    );
                } else {
                    ops.add(ptr(["spec", "initContainers"], [0]), init);
                }
                Box::new(|i| i + 1)
            }
        };
        if self.volume_pos.is_none() {
            let volume = to_value(&launcher_volume(), &self.label)?;
            if self.spec.volumes.as_ref().is_none_or(Vec::is_empty) {
                ops.add(ptr(["spec", "volumes"], []), serde_json::json!([volume]));
            } else {
                ops.add(ptr(["spec", "volumes", "-"], []), volume);
            }
        }

        // One serialisation of the mount, cloned into every container.
        let mount = to_value(&launcher_mount(), &self.label)?;
        let mut records = BTreeMap::new();
        let mut policies = BTreeMap::new();
        for view in &self.views {
            let index = match view.list {
                List::Init => init_index_shift(view.index),
                List::App | List::Ephemeral => view.index,
            };
            let base = ptr(["spec", view.list.json()], [index]);
            let derived = derive::derive_policy(
                &view.settings,
                &view.original,
                self.spec.volumes.as_deref().unwrap_or_default(),
            );
            warnings.extend(derived.warnings);
            self.check_image(view, &mut warnings)?;
            self.check_path_dirs(view, &derived.policy, &mut warnings)?;
            self.check_io_uring(view)?;
            self.pin_image(&mut ops, &base, view);
            let policy_json = kubelet_literal(&derived.policy.to_json());
            let record = match self.record_of(&view.current.name) {
                None => {
                    self.wrap_container(&mut ops, &base, view, &policy_json, &mount, &mut warnings)
                }
                Some(record) => {
                    update_container(&mut ops, &base, view, record, &policy_json, &mut warnings)
                }
            };
            records.insert(view.current.name.clone(), record);
            policies.insert(view.current.name.clone(), derived.policy);
        }

        let status = Status {
            version: STATUS_VERSION,
            containers: records,
            skipped: None,
        };
        self.set_status(&mut ops, &status);
        self.set_profile_label(&mut ops, self.profile_summary());
        let outcome = if ops.0.is_empty() {
            // Said on the first pass already.
            warnings.clear();
            Outcome::AlreadyWrapped
        } else {
            Outcome::Wrapped
        };
        Ok(Mutation::new(ops, outcome, policies, warnings))
    }

    /// First wrap of a container; returns its status record.
    pub(crate) fn wrap_container(
        &self,
        ops: &mut Ops,
        base: &PointerBuf,
        view: &View,
        policy_json: &str,
        mount: &serde_json::Value,
        warnings: &mut Vec<String>,
    ) -> WrappedContainer {
        let c = view.current;
        let name = &c.name;
        let kept = strip_user_env(
            ops,
            base,
            c,
            |_| false,
            "the LANDGATE_* variables are landgate's; LANDGATE_POLICY is derived from the pod",
            warnings,
        );

        let mut appended: Vec<serde_json::Value> = Vec::with_capacity(3);
        let (edit, path_value) = match last_path(&kept) {
            Some((i, var)) if var.value_from.is_none() => {
                let value = prefixed_path(var.value.as_deref().unwrap_or_default());
                ops.add(
                    at(base, ["env"], [i]).with("value"),
                    serde_json::Value::String(value.clone()),
                );
                (PathEdit::Prefixed, Some(value))
            }
            Some(_) => {
                warnings.push(format!(
                    "container {name:?}: PATH comes from valueFrom and cannot be prefixed with /landgate/bin, so programs started by name (kubectl exec … -- sh) are not sandboxed; set PATH as a plain value"
                ));
                (PathEdit::Untouched, None)
            }
            None if view.image().is_some() => {
                // The spec's PATH replaces the image's, so the image's goes
                // after /landgate/bin (the runtime's default when the image
                // sets none).
                let value = prefixed_path(&kubelet_literal(self.image_path(view)));
                appended.push(env_var("PATH", &value));
                (PathEdit::Added, Some(value))
            }
            None => {
                // The spec's PATH replaces the image's ENV PATH, which is
                // unknown when the image was not resolved: say so, since a
                // program found only there (a JDK's /opt/java/openjdk/bin)
                // would no longer be found.
                let value = prefixed_path(&kubelet_literal(&self.settings.default_path));
                let also = if c.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
                    " and any PATH from envFrom"
                } else {
                    ""
                };
                warnings.push(format!(
                    "container {name:?}: PATH set to {value}, replacing the image's own PATH{also} (unknown at admission); if the image needs other directories on PATH, set PATH under env"
                ));
                appended.push(env_var("PATH", &value));
                (PathEdit::Added, Some(value))
            }
        };
        appended.push(env_var(POLICY_ENV, policy_json));
        appended.push(active_marker());
        if kept.is_empty() {
            ops.add(at(base, ["env"], []), serde_json::Value::Array(appended));
        } else {
            for var in appended {
                ops.add(at(base, ["env", "-"], []), var);
            }
        }

        // Image values are written so that the kubelet passes them on as
        // they are: it expands `$(VAR)` in the spec, never in the image.
        let from = &view.from_image;
        let literal = |values: &[String]| -> Vec<String> {
            values.iter().map(|v| kubelet_literal(v)).collect()
        };
        let original = view.original.command.as_deref().unwrap_or_default();
        let command = match from.command_from_config {
            true => argv::exec(&literal(original)),
            false => argv::exec(original),
        };
        ops.add(at(base, ["command"], []), serde_json::json!(command));
        if let Some(args) = &from.args {
            ops.add(at(base, ["args"], []), serde_json::json!(literal(args)));
        }
        if from.drop_args {
            ops.push(PatchOperation::Remove(RemoveOperation {
                path: at(base, ["args"], []),
            }));
        }
        if let Some(dir) = &view.from_image.working_dir {
            ops.add(
                at(base, ["workingDir"], []),
                serde_json::Value::String(dir.clone()),
            );
        }
        prefix_exec_handlers(ops, base, c);
        if c.volume_mounts.as_ref().is_none_or(Vec::is_empty) {
            ops.add(
                at(base, ["volumeMounts"], []),
                serde_json::Value::Array(vec![mount.clone()]),
            );
        } else {
            ops.add(at(base, ["volumeMounts", "-"], []), mount.clone());
        }

        WrappedContainer {
            hash: container_hash(name, &command, policy_json, path_value.as_deref(), edit),
            path: edit,
        }
    }
}

impl Pass<'_> {
    /// The PATH the container gets from its resolved image: the image's
    /// own, else the runtime's default (`--default-path`).
    pub(crate) fn image_path<'v>(&'v self, view: &'v View) -> &'v str {
        view.image()
            .and_then(|config| config.path.as_deref())
            .unwrap_or(&self.settings.default_path)
    }

    /// `image: name:tag@sha256:…` for a resolved image not pinned yet, so
    /// that what runs is what was looked up.
    pub(crate) fn pin_image(&self, ops: &mut Ops, base: &PointerBuf, view: &View) {
        let (Some(config), Some(image)) = (view.image(), view.current.image.as_deref()) else {
            return;
        };
        if self.settings.pin_digests && !is_pinned(image) {
            ops.add(
                at(base, ["image"], []),
                serde_json::Value::String(format!("{image}@{}", config.digest)),
            );
        }
    }
}

/// A later pass over a wrapped container: new policy if the spec changed,
/// exec handlers and LANDGATE_* env added since handled.
fn update_container(
    ops: &mut Ops,
    base: &PointerBuf,
    view: &View,
    record: &WrappedContainer,
    policy_json: &str,
    warnings: &mut Vec<String>,
) -> WrappedContainer {
    let c = view.current;
    // The LANDGATE_* variables a previous pass wrote: LANDGATE_POLICY and
    // one empty marker (a later webhook's LANDGATE_ACTIVE=1, or a second
    // copy, is not landgate's).
    let env = c.env.as_deref().unwrap_or_default();
    let marker = env.iter().rposition(is_active_marker);
    let kept = strip_user_env(
        ops,
        base,
        c,
        |var| {
            var.name == POLICY_ENV
                || (is_active_marker(var) && marker.is_some_and(|i| std::ptr::eq(var, &env[i])))
        },
        "the LANDGATE_* variables are landgate's",
        warnings,
    );
    if !kept.iter().any(|v| is_active_marker(v)) {
        // Pods wrapped before the marker existed, or whose marker a later
        // webhook replaced.
        let marker = active_marker();
        if kept.is_empty() {
            ops.add(at(base, ["env"], []), serde_json::json!([marker]));
        } else {
            ops.add(at(base, ["env", "-"], []), marker);
        }
    }
    if let Some(i) = kept.iter().position(|v| v.name == POLICY_ENV)
        && kept[i].value.as_deref() != Some(policy_json)
    {
        ops.add(
            at(base, ["env"], [i]).with("value"),
            serde_json::Value::String(policy_json.to_owned()),
        );
    }
    prefix_exec_handlers(ops, base, c);
    let command = c.command.as_deref().unwrap_or_default();
    let path_value = match record.path {
        PathEdit::Untouched => None,
        _ => last_path(&kept).and_then(|(_, v)| v.value.as_deref()),
    };
    WrappedContainer {
        hash: container_hash(&c.name, command, policy_json, path_value, record.path),
        path: record.path,
    }
}

/// Removes the container's `LANDGATE_*` env that `landgate_owned` does not
/// claim, warning with `why`, and returns the env that stays (indices into
/// it are indices after the removals). User-supplied LANDGATE_* cannot be
/// trusted: LANDGATE_ACTIVE=1 would make wrappers skip the sandbox.
fn strip_user_env<'c>(
    ops: &mut Ops,
    base: &PointerBuf,
    c: &'c Container,
    landgate_owned: impl Fn(&EnvVar) -> bool,
    why: &str,
    warnings: &mut Vec<String>,
) -> Vec<&'c EnvVar> {
    let env = c.env.as_deref().unwrap_or_default();
    let strip = |var: &EnvVar| var.name.starts_with(env::PREFIX) && !landgate_owned(var);
    let mut stripped = Vec::new();
    // Highest index first, so that earlier removals do not shift later ones.
    for (i, var) in env.iter().enumerate().rev() {
        if strip(var) {
            ops.push(PatchOperation::Remove(RemoveOperation {
                path: at(base, ["env"], [i]),
            }));
            stripped.push(var.name.as_str());
        }
    }
    if !stripped.is_empty() {
        stripped.reverse();
        warnings.push(format!(
            "container {:?}: removed env {} ({why})",
            c.name,
            stripped.join(", ")
        ));
    }
    env.iter().filter(|var| !strip(var)).collect()
}
