//! A pass after a wrapping one (`reinvocationPolicy: IfNeeded`, or a pod
//! that arrives already carrying a status): every recorded container must
//! still carry exactly what landgate wrote (its hash), otherwise the pod is
//! refused as tampered; landgate-init is rebuilt when it differs; the
//! original of each wrapped container is recovered so its policy can be
//! derived again from the current spec.

use k8s_openapi::api::core::v1::{Container, EnvVar, VolumeMount};
use landgate_policy::env::ACTIVE as ACTIVE_ENV;
use landgate_policy::layout::VOLUME;
use landgate_policy::{AbsPath, POLICY_ENV, argv};

use crate::container::{exec_commands_mut, last_path, strip_path};
use crate::error::MutateError;
use crate::inject::{init_container, launcher_mount, launcher_volume};
use crate::mount_path;
use crate::read::{List, Pass};
use crate::status::{PathEdit, WrappedContainer, container_hash};

/// Where the ServiceAccount admission plugin mounts the API token
/// (`DefaultAPITokenMountPath` in kube-apiserver's serviceaccount plugin).
pub const SERVICE_ACCOUNT_TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the API server defaults `terminationMessagePath` to.
const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

impl Pass<'_> {
    /// On a pass after a wrapping one, landgate-init and the volume must be
    /// there and the volume exactly landgate's: the status is user-writable,
    /// so a pod could arrive with a forged one and its own "launcher".
    /// landgate-init itself is rebuilt when it differs
    /// ([`Pass::rebuilt_init_container`]).
    pub(crate) fn verify_pod_level(&self) -> Result<(), MutateError> {
        let tampered = |field: &str, what: &str| MutateError::Tampered {
            pod: self.label.clone(),
            field: field.to_owned(),
            what: what.to_owned(),
        };
        if self.init_pos.is_none() {
            return Err(tampered(
                "spec.initContainers",
                "the landgate-init init container is missing",
            ));
        }
        match self.volume_pos {
            None => Err(tampered("spec.volumes", "the landgate volume is missing")),
            Some(pos) => {
                let found = &self.spec.volumes.as_deref().unwrap_or_default()[pos];
                if *found == launcher_volume() {
                    Ok(())
                } else {
                    Err(tampered(
                        &format!("spec.volumes[{pos}] ({VOLUME})"),
                        "it is not landgate's in-memory emptyDir",
                    ))
                }
            }
        }
    }

    /// landgate-init as this replica builds it, when the pod's differs in
    /// anything but what may legitimately differ on a later pass:
    /// - fields the API server defaults (`imagePullPolicy`,
    ///   `terminationMessage*`) and `resources` (LimitRanger fills in
    ///   defaults): none changes what `landgate install` does;
    /// - the ServiceAccount token mount, which the ServiceAccount admission
    ///   plugin adds to every container before it re-invokes landgate
    ///   ([`Pass::is_token_mount`]); it is kept in the rebuilt container.
    ///
    /// landgate-init writes the launcher that every other container runs
    /// through, and there is no "original" of it to recover, so a changed
    /// one is rebuilt from scratch rather than refused: a forged mount over
    /// its `/usr/local/bin`, an older launcher tag without later fixes, a
    /// wrapper list without `sh`, or the env and token mount a later
    /// webhook (EKS pod identity) adds to every init container all end as
    /// landgate's own container. Returns the rebuilt container and the
    /// fields that differed, for the warning.
    pub(crate) fn rebuilt_init_container(&self) -> Option<(Container, Vec<String>)> {
        let found = &self.spec.init_containers.as_deref().unwrap_or_default()[self.init_pos?];
        let expected = init_container(self.settings, self.spec);
        let differing = self.init_container_differences(found, &expected);
        if differing.is_empty() {
            return None;
        }
        let mut rebuilt = expected;
        let tokens = found
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| self.is_token_mount(m))
            .cloned();
        rebuilt
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .extend(tokens);
        Some((rebuilt, differing))
    }

    /// The fields of `found` that differ from `expected`, beyond those
    /// [`Pass::rebuilt_init_container`] lists as allowed to.
    pub(crate) fn init_container_differences(
        &self,
        found: &Container,
        expected: &Container,
    ) -> Vec<String> {
        let mut seen = found.clone();
        seen.image_pull_policy
            .clone_from(&expected.image_pull_policy);
        // The API server's default only: the kubelet bind-mounts a file at
        // any other path, which could cover the launcher it installs.
        if seen
            .termination_message_path
            .as_deref()
            .is_none_or(|p| p == DEFAULT_TERMINATION_MESSAGE_PATH)
        {
            seen.termination_message_path
                .clone_from(&expected.termination_message_path);
        }
        seen.termination_message_policy
            .clone_from(&expected.termination_message_policy);
        seen.resources.clone_from(&expected.resources);
        if let Some(mounts) = seen.volume_mounts.as_mut() {
            mounts.retain(|m| !self.is_token_mount(m));
        }
        if seen == *expected {
            return Vec::new();
        }
        // Name the fields for the refusal; only on this error path.
        let (Ok(serde_json::Value::Object(seen)), Ok(serde_json::Value::Object(expected))) =
            (serde_json::to_value(&seen), serde_json::to_value(expected))
        else {
            return vec!["fields".to_owned()];
        };
        let mut keys: Vec<&String> = seen.keys().chain(expected.keys()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .filter(|k| seen.get(*k) != expected.get(*k))
            .map(|k| match k.as_str() {
                "volumeMounts" => "volumeMounts (only the ServiceAccount token may be added)",
                other => other,
            })
            .map(str::to_owned)
            .collect()
    }

    /// The mount the ServiceAccount admission plugin adds: read-only, at or
    /// beneath the token directory, from a projected volume with a
    /// serviceAccountToken source or a (legacy token) secret volume. A
    /// mount there cannot change what `landgate install` runs or writes.
    pub(crate) fn is_token_mount(&self, mount: &VolumeMount) -> bool {
        let token_dir: AbsPath = SERVICE_ACCOUNT_TOKEN_DIR
            .parse()
            .unwrap_or_else(|err| unreachable!("constant path: {err}"));
        let at_token_dir =
            mount_path::normalise(&mount.mount_path).is_ok_and(|path| path.is_within(&token_dir));
        let plain = mount.read_only == Some(true)
            && mount.sub_path.as_deref().is_none_or(str::is_empty)
            && mount.sub_path_expr.as_deref().is_none_or(str::is_empty)
            && mount
                .mount_propagation
                .as_deref()
                .is_none_or(|p| p == "None");
        let token_volume = self
            .spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .is_some_and(|v| {
                v.secret.is_some()
                    || v.projected.as_ref().is_some_and(|p| {
                        p.sources
                            .iter()
                            .flatten()
                            .any(|s| s.service_account_token.is_some())
                    })
            });
        at_token_dir && plain && token_volume
    }

    /// Checks a container a previous pass wrapped and returns it as it was
    /// before.
    pub(crate) fn verify_container(
        &self,
        list: List,
        index: usize,
        container: &Container,
        record: &WrappedContainer,
    ) -> Result<Container, MutateError> {
        let tampered = |what: &str| MutateError::Tampered {
            pod: self.label.clone(),
            field: format!(
                "container {:?} (spec.{}[{index}])",
                container.name,
                list.json()
            ),
            what: what.to_owned(),
        };
        let command = container.command.as_deref().unwrap_or_default();
        let Some(unwrapped) = argv::unwrap_exec(command) else {
            return Err(tampered(
                "its command no longer starts with /landgate/landgate exec --",
            ));
        };
        let mounts = container.volume_mounts.as_deref().unwrap_or_default();
        if mounts.iter().filter(|m| **m == launcher_mount()).count() != 1 {
            return Err(tampered(
                "its read-only /landgate mount is missing or changed",
            ));
        }
        let env = container.env.as_deref().unwrap_or_default();
        let policies: Vec<&EnvVar> = env.iter().filter(|e| e.name == POLICY_ENV).collect();
        let [policy] = policies.as_slice() else {
            return Err(tampered("it no longer has exactly one LANDGATE_POLICY"));
        };
        let (Some(policy_json), None) = (&policy.value, &policy.value_from) else {
            return Err(tampered("its LANDGATE_POLICY is no longer a plain value"));
        };
        let path = last_path(env).map(|(_, e)| e);
        let path_value = match record.path {
            // Only a PATH from valueFrom is left alone; a status that says
            // so of a plain PATH would keep the wrappers off it.
            PathEdit::Untouched => match path {
                Some(var) if var.value_from.is_some() => None,
                _ => {
                    return Err(tampered(
                        "its PATH is recorded as coming from valueFrom, but it does not",
                    ));
                }
            },
            PathEdit::Added | PathEdit::Prefixed => {
                match path
                    .filter(|p| p.value_from.is_none())
                    .and_then(|p| p.value.as_deref())
                {
                    Some(value) if strip_path(value).len() < value.len() => Some(value),
                    _ => return Err(tampered("its PATH no longer starts with /landgate/bin")),
                }
            }
        };
        let hash = container_hash(
            &container.name,
            command,
            policy_json,
            path_value,
            record.path,
        );
        if hash != record.hash {
            return Err(tampered(
                "its command, LANDGATE_POLICY or PATH no longer match the hash in landgate.dev/status",
            ));
        }

        let mut original = container.clone();
        original.command = Some(unwrapped.to_vec());
        for command in exec_commands_mut(&mut original) {
            if argv::unwrap_exec(command).is_some() {
                command.drain(..argv::EXEC_PREFIX.len());
            }
        }
        if let Some(env) = original.env.as_mut() {
            env.retain(|e| e.name != POLICY_ENV && e.name != ACTIVE_ENV);
            if let Some((i, _)) = last_path(env) {
                match record.path {
                    PathEdit::Added => {
                        env.remove(i);
                    }
                    PathEdit::Prefixed => {
                        let value = env[i].value.take().unwrap_or_default();
                        env[i].value =
                            Some(strip_path(&value).to_owned()).filter(|v| !v.is_empty());
                    }
                    PathEdit::Untouched => {}
                }
            }
        }
        if let Some(mounts) = original.volume_mounts.as_mut() {
            mounts.retain(|m| *m != launcher_mount());
        }
        Ok(original)
    }
}
