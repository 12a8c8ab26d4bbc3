//! `kubectl debug`: the ephemeral containers an update of the
//! `pods/ephemeralcontainers` subresource adds to a pod landgate wrapped.
//! Under `landgate.dev/exec: sandboxed` each is wrapped like any other
//! container of the pod (the launcher mount, read-only; its command, or its
//! image's entrypoint, behind `/landgate/landgate exec --`; PATH; a policy
//! derived from the pod and its own mounts, with no ports: an ephemeral
//! container cannot declare any); under `deny` it is refused; under `allow`
//! it is admitted as it is.
//!
//! There is no status record for them: the subresource keeps only
//! `spec.ephemeralContainers` from a patch, so `landgate.dev/status` cannot
//! name them. The container's own shape is the record. `Ephemeral::verify`
//! recovers what it was before landgate (the command behind `exec --`, its
//! env without landgate's variables, PATH without `/landgate/bin`, its
//! mounts without the launcher's), wraps that again and compares: equal
//! means landgate wrapped it, with the policy this pod derives for it now.
//! The validating webhook admits only such containers, and `kubectl exec`
//! into one ([`carries_wrapping`]) is rewritten like an exec into any
//! wrapped container.
//!
//! Existing ephemeral containers are never touched: the API server refuses
//! any change to them.

use std::collections::BTreeMap;

use json_patch::jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod, PodSpec};
use landgate_policy::env::ACTIVE as ACTIVE_ENV;
use landgate_policy::{Enforcement, POLICY_ENV, argv};

use crate::container::{kubelet_literal, last_path, strip_path};
use crate::derive::{self, ExecPolicy, Origin};
use crate::image::ImageLookup;
use crate::inject::launcher_mount;
use crate::mount_path::{self, Mounts};
use crate::mutate::{MutateError, Mutation, PodContext, pod_label};
use crate::outcome::Outcome;
use crate::patch::{Ops, ptr, to_value};
use crate::read::{FromImage, List, Pass, View, fill_from_image};
use crate::settings::Settings;
use crate::status::wrapped_containers;
use crate::update::UpdateError;

/// One pod's ephemeral containers, judged with everything landgate read of
/// the pod once: its pass (annotations, settings, volumes) and its exec
/// policy.
pub struct Ephemeral<'a> {
    pass: Pass<'a>,
    spec: &'a PodSpec,
    exec: ExecPolicy,
    exec_origin: Option<Origin>,
}

/// What happens to one ephemeral container the update adds.
enum Verdict {
    /// Landgate's wrapping, exactly: nothing to do.
    Wrapped,
    /// Admitted as it is (`allow`).
    Unsandboxed,
    /// To be wrapped by the mutating webhook.
    Unwrapped(String),
}

impl<'a> Ephemeral<'a> {
    /// Reads `pod` for its ephemeral containers; `None` when landgate did
    /// not wrap it (nothing to guard). Fails like the mutating pass would
    /// on a pod it cannot read (a tampered container, a bad annotation).
    pub fn read(
        settings: &'a Settings,
        context: PodContext<'a>,
        pod: &'a Pod,
    ) -> Result<Option<Self>, UpdateError> {
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(None);
        };
        if wrapped_containers(pod).is_empty() {
            return Ok(None);
        }
        let label = pod_label(context.namespace, pod);
        let annotations = pod.metadata.annotations.as_ref().unwrap_or(EMPTY);
        let (exec, exec_origin) = derive::exec_policy(
            annotations,
            context.namespace,
            context.namespace_annotations,
        )
        .map_err(|error| UpdateError::Annotation {
            pod: label.clone(),
            error: Box::new(error),
        })?;
        let pass = Pass::read(settings, context, pod, spec, annotations, label)
            .map_err(UpdateError::Container)?;
        Ok(Some(Self {
            pass,
            spec,
            exec,
            exec_origin,
        }))
    }

    /// The mutating webhook: a patch wrapping every ephemeral container
    /// `old` does not have, with its image's entrypoint from `images`
    /// where it sets no command. Refused under `deny`, and where a
    /// container cannot be wrapped.
    pub fn wrap(&self, old: &Pod, images: &crate::image::Images) -> Result<Mutation, UpdateError> {
        let mut ops = Ops::default();
        let mut policies = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut unsandboxed = Vec::new();
        for (index, container) in added(old, self.spec) {
            match self.judge(index, container)? {
                Verdict::Wrapped => {}
                Verdict::Unsandboxed => unsandboxed.push(container.name.clone()),
                Verdict::Unwrapped(_) => {
                    self.check_mounts(index, container, false)?;
                    let base = ptr(["spec", List::Ephemeral.json()], [index]);
                    let current = as_container(container, &self.pass.label)?;
                    let view = self.view(index, &current, images);
                    if view.image().is_none()
                        && view.original.command.as_ref().is_none_or(Vec::is_empty)
                    {
                        return Err(self.unknown_entrypoint(index, container, &view));
                    }
                    let policy = self.wrap_one(&mut ops, &base, &view, &mut warnings)?;
                    policies.insert(container.name.clone(), policy);
                }
            }
        }
        self.check_others_path_dirs(old)?;
        let outcome = match (ops.0.is_empty(), unsandboxed.is_empty()) {
            (false, _) => Outcome::Wrapped,
            (true, false) => Outcome::Skipped(format!(
                "ephemeral container {} admitted unsandboxed: {}",
                unsandboxed.join(", "),
                self.said()
            )),
            (true, true) => Outcome::AlreadyWrapped,
        };
        Ok(Mutation::new(ops, outcome, policies, warnings))
    }

    /// The validating webhook: every ephemeral container `old` does not
    /// have is landgate's wrapping (or admitted under `allow`).
    pub fn check(&self, old: &Pod) -> Result<(), UpdateError> {
        for (index, container) in added(old, self.spec) {
            if let Verdict::Unwrapped(why) = self.judge(index, container)? {
                return Err(UpdateError::EphemeralContainer {
                    pod: self.pass.label.clone(),
                    container: container.name.clone(),
                    field: field(index),
                    why: format!(
                        "it is not wrapped as landgate wraps it ({why}), so it would run outside the sandbox ({}): landgate's mutating webhook did not see it, or a later one changed it",
                        self.said()
                    ),
                });
            }
        }
        self.check_others_path_dirs(old)
    }

    /// A debug container that mounts a volume writable may put a directory
    /// on another container's PATH within reach of sandboxed code, which a
    /// container that requires enforcement refuses at creation (a program
    /// planted there runs unsandboxed wherever an exec is not rewritten):
    /// every such container, and every earlier debug container, is judged
    /// again with the writers this update adds (security review). Only
    /// refusals: the warnings were given when each was admitted.
    fn check_others_path_dirs(&self, old: &Pod) -> Result<(), UpdateError> {
        let volumes = self.spec.volumes.as_deref().unwrap_or_default();
        let Some((index, writer)) = added(old, self.spec).find(|(_, c)| {
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| derive::mounts_writable(m, volumes))
        }) else {
            return Ok(());
        };
        let refuse = |error: MutateError| UpdateError::EphemeralContainer {
            pod: self.pass.label.clone(),
            container: writer.name.clone(),
            field: field(index),
            why: format!("its writable mounts reach another container's PATH: {error}"),
        };
        let required = |view: &View| view.settings.enforcement == Enforcement::Required;
        for view in self.pass.views.iter().filter(|v| required(v)) {
            let derived = derive::derive_policy(&view.settings, &view.original, volumes);
            self.pass
                .check_path_dirs(view, &derived.policy, &mut Vec::new())
                .map_err(refuse)?;
        }
        let earlier = self.spec.ephemeral_containers.iter().flatten().enumerate();
        for (i, container) in earlier.filter(|(_, c)| carries_wrapping(c)) {
            let Ok(original) = as_container(container, &self.pass.label)
                .map_err(|e| e.to_string())
                .and_then(|c| recover(&c))
            else {
                continue;
            };
            let view = self.view(i, &original, crate::mutate::NO_IMAGES);
            if required(&view) {
                let derived = derive::derive_policy(&view.settings, &view.original, volumes);
                self.pass
                    .check_path_dirs(&view, &derived.policy, &mut Vec::new())
                    .map_err(refuse)?;
            }
        }
        Ok(())
    }

    /// Refused under `deny`; admitted as it is under `allow` (its mounts
    /// checked); else whether it is landgate's wrapping already (whose
    /// mounts are then checked; an unwrapped one's are checked before it is
    /// wrapped).
    fn judge(&self, index: usize, container: &EphemeralContainer) -> Result<Verdict, UpdateError> {
        match self.exec {
            ExecPolicy::Deny => {
                return Err(UpdateError::EphemeralContainer {
                    pod: self.pass.label.clone(),
                    container: container.name.clone(),
                    field: field(index),
                    why: format!("debug containers are refused: {}", self.said()),
                });
            }
            ExecPolicy::Allow => {
                self.check_mounts(index, container, false)?;
                return Ok(Verdict::Unsandboxed);
            }
            ExecPolicy::Sandboxed => {}
        }
        match self.verify(index, container) {
            Ok(()) => {
                self.check_mounts(index, container, true)?;
                Ok(Verdict::Wrapped)
            }
            Err(why) => Ok(Verdict::Unwrapped(why)),
        }
    }

    /// Whether `container` is exactly what landgate makes of an ephemeral
    /// container of this pod; if not, what differs.
    fn verify(&self, index: usize, container: &EphemeralContainer) -> Result<(), String> {
        let current = as_container(container, &self.pass.label).map_err(|e| e.to_string())?;
        let original = recover(&current)?;
        let view = self.view(index, &original, crate::mutate::NO_IMAGES);
        let mut ops = Ops::default();
        // Relative to the container itself: the patch is applied to it here.
        self.wrap_one(&mut ops, &PointerBuf::new(), &view, &mut Vec::new())
            .map_err(|e| e.to_string())?;
        let mut rewrapped = serde_json::to_value(&original).map_err(|e| e.to_string())?;
        json_patch::patch(&mut rewrapped, &ops.0).map_err(|e| e.to_string())?;
        let rewrapped: Container = serde_json::from_value(rewrapped).map_err(|e| e.to_string())?;
        if rewrapped == current {
            Ok(())
        } else {
            Err(format!(
                "its {} differ from what landgate derives for it",
                crate::update::differing_fields(&current, &rewrapped).join(", ")
            ))
        }
    }

    /// The container as the mutating pass sees one it has not wrapped: its
    /// settings from the pod's annotations, what its image says where it
    /// sets no command.
    fn view<'c>(
        &'c self,
        index: usize,
        current: &'c Container,
        images: &'c crate::image::Images,
    ) -> View<'c> {
        let mut original = current.clone();
        let lookup = current.image.as_ref().and_then(|i| images.get(i));
        let from_image = match lookup {
            Some(ImageLookup::Resolved(config)) => fill_from_image(&mut original, config),
            _ => FromImage::default(),
        };
        View {
            list: List::Ephemeral,
            index,
            current,
            original: std::borrow::Cow::Owned(original),
            settings: self
                .pass
                .annotations
                .for_container(self.pass.settings, &current.name),
            recorded: false,
            lookup,
            from_image,
        }
    }

    /// The patch wrapping `view` at `base`, by the same steps as every
    /// other container of the pod (`wrap`); its policy.
    fn wrap_one(
        &self,
        ops: &mut Ops,
        base: &PointerBuf,
        view: &View,
        warnings: &mut Vec<String>,
    ) -> Result<landgate_policy::Policy, UpdateError> {
        let pass = &self.pass;
        let derived = derive::derive_policy(
            &view.settings,
            &view.original,
            self.spec.volumes.as_deref().unwrap_or_default(),
        );
        warnings.extend(derived.warnings);
        pass.check_image(view, warnings)
            .and_then(|()| pass.check_path_dirs(view, &derived.policy, warnings))
            .and_then(|()| pass.check_io_uring(view))
            .map_err(UpdateError::Container)?;
        pass.pin_image(ops, base, view);
        let policy_json = kubelet_literal(&derived.policy.to_json());
        let mount = to_value(&launcher_mount(), &pass.label).map_err(UpdateError::Container)?;
        pass.wrap_container(ops, base, view, &policy_json, &mount, warnings);
        Ok(derived.policy)
    }

    /// The mount checks of any container of a wrapped pod; `wrapped` when it
    /// carries landgate's launcher mount (verified), which is then its own.
    fn check_mounts(
        &self,
        index: usize,
        container: &EphemeralContainer,
        wrapped: bool,
    ) -> Result<(), UpdateError> {
        let field = field(index);
        let gets_launcher = self.exec != ExecPolicy::Allow;
        mount_path::check(
            Mounts::of_ephemeral(&field, container),
            self.spec.volumes.as_deref().unwrap_or_default(),
            |mount| wrapped && *mount == launcher_mount(),
            gets_launcher,
        )
        .map_err(|error| {
            UpdateError::Container(MutateError::Mount {
                pod: self.pass.label.clone(),
                error: Box::new(error),
            })
        })
    }

    fn unknown_entrypoint(
        &self,
        index: usize,
        container: &EphemeralContainer,
        view: &View,
    ) -> UpdateError {
        let why = match view.lookup {
            Some(ImageLookup::Failed { cause, message }) => {
                format!("its image could not be looked up ({cause}: {message})")
            }
            _ => {
                "its image was not looked up (the webhook runs without image resolution)".to_owned()
            }
        };
        UpdateError::DebugEntrypoint {
            pod: self.pass.label.clone(),
            container: container.name.clone(),
            field: field(index),
            image: container.image.clone().unwrap_or_default(),
            why,
        }
    }

    /// The exec policy and where it came from, for messages.
    fn said(&self) -> String {
        derive::exec_said(self.exec, self.exec_origin.as_ref())
    }
}

const EMPTY: &BTreeMap<String, String> = &BTreeMap::new();

fn field(index: usize) -> String {
    format!("spec.{}[{index}]", List::Ephemeral.json())
}

/// Whether `container` carries landgate's wrapping: its command behind the
/// launcher, the launcher volume mounted read-only at `/landgate` exactly
/// once, one plain `LANDGATE_POLICY`. Enough for `kubectl exec` into it: an
/// ephemeral container never changes once added, and one carrying the
/// launcher mount was admitted only as landgate's exact wrapping (the
/// validating webhook under `sandboxed`; the mount is refused under
/// `allow` and `deny`). Deriving its policy again at exec time would refuse
/// legitimate debugging whenever a namespace's settings or the webhook's
/// flags changed since, while the debug process runs on under its policy.
pub fn carries_wrapping(container: &EphemeralContainer) -> bool {
    let command = container.command.as_deref().unwrap_or_default();
    let mounts = container.volume_mounts.as_deref().unwrap_or_default();
    let env = container.env.as_deref().unwrap_or_default();
    let policies: Vec<_> = env.iter().filter(|e| e.name == POLICY_ENV).collect();
    argv::unwrap_exec(command).is_some()
        && mounts.iter().filter(|m| **m == launcher_mount()).count() == 1
        && matches!(policies.as_slice(), [one] if one.value.is_some() && one.value_from.is_none())
}

/// The images of the ephemeral containers `new` adds: what the mutating
/// webhook looks up before [`Ephemeral::wrap`], as it does for a pod's own
/// containers (an entrypoint where a container sets no command; PATH,
/// working directory and digest pin for every one).
pub fn images_to_resolve(old: &Pod, new: &Pod) -> Vec<String> {
    let mut images: Vec<String> = Vec::new();
    let added = new.spec.iter().flat_map(|spec| added(old, spec));
    for (_, c) in added {
        if let Some(image) = c.image.as_deref().filter(|i| !i.is_empty())
            && !images.iter().any(|seen| seen == image)
        {
            images.push(image.to_owned());
        }
    }
    images
}

/// Whether `new` has an ephemeral container `old` does not have as it is.
pub fn adds_any(old: &Pod, new: &Pod) -> bool {
    new.spec
        .as_ref()
        .is_some_and(|spec| added(old, spec).next().is_some())
}

/// The ephemeral containers of `spec` that `old` does not have as they are
/// (the API server refuses changing or removing one; anything else counts
/// as added, so nothing slips through).
fn added<'p>(
    old: &Pod,
    spec: &'p PodSpec,
) -> impl Iterator<Item = (usize, &'p EphemeralContainer)> {
    let before: Vec<&EphemeralContainer> = old
        .spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .collect();
    spec.ephemeral_containers
        .iter()
        .flatten()
        .enumerate()
        .filter(move |(_, c)| !before.contains(c))
}

/// An ephemeral container as a container: the same fields but
/// `targetContainerName`, so that the wrapping of containers applies.
fn as_container(container: &EphemeralContainer, pod: &str) -> Result<Container, UpdateError> {
    let mut value = to_value(container, pod).map_err(UpdateError::Container)?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("targetContainerName");
    }
    serde_json::from_value(value).map_err(|err| {
        UpdateError::Container(MutateError::Internal {
            pod: pod.to_owned(),
            message: format!("an ephemeral container does not read as a container: {err}"),
        })
    })
}

/// What a container landgate wrapped was before: the command behind
/// `exec --`, the env without `LANDGATE_POLICY` and the marker, PATH
/// without `/landgate/bin` (as if landgate had prefixed it: wrapping it
/// again gives the same PATH whether landgate added it or prefixed it),
/// the mounts without the launcher's.
fn recover(container: &Container) -> Result<Container, String> {
    let command = container.command.as_deref().unwrap_or_default();
    let Some(unwrapped) = argv::unwrap_exec(command) else {
        return Err("its command does not start with /landgate/landgate exec --".to_owned());
    };
    let mut original = container.clone();
    original.command = Some(unwrapped.to_vec());
    if let Some(env) = original.env.as_mut() {
        env.retain(|e| e.name != POLICY_ENV && e.name != ACTIVE_ENV);
        if let Some((i, var)) = last_path(env)
            && var.value_from.is_none()
        {
            let value = var.value.clone().unwrap_or_default();
            env[i].value = Some(strip_path(&value).to_owned());
        }
    }
    if let Some(mounts) = original.volume_mounts.as_mut() {
        mounts.retain(|m| *m != launcher_mount());
    }
    Ok(original)
}
