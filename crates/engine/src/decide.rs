//! What landgate does with a pod it has read: wrap it, admit it unwrapped
//! (a pod is never half-wrapped), or refuse it. The refusals that depend on
//! a container's policy (PATH directories, io_uring) are checked here too,
//! called by `wrap` once the policy is derived.

use k8s_openapi::api::core::v1::Container;
use landgate_policy::layout::{INIT_CONTAINER, VOLUME};
use landgate_policy::{AbsPath, Enforcement, Policy};

use crate::container::{last_path, strip_path};
use crate::derive;
use crate::error::MutateError;
use crate::image::ImageLookup;
use crate::inject::launcher_mount;
use crate::mount_path::{self, Mounts};
use crate::read::{Pass, View};
use crate::settings::UnknownEntrypoint;

/// Whether `image` names a digest (`name@sha256:…`, `name:tag@sha256:…`):
/// such a reference is never rewritten.
pub(crate) fn is_pinned(image: &str) -> bool {
    image.contains('@')
}

/// `; its image "…" could not be looked up (cause: message)`, when it was
/// looked up and failed.
fn lookup_failure(view: &View) -> String {
    match view.lookup {
        Some(ImageLookup::Failed { cause, message }) => format!(
            " (its image {:?} could not be looked up: {cause}: {message})",
            view.current.image.as_deref().unwrap_or_default()
        ),
        _ => String::new(),
    }
}

/// The decision for a pod that is not refused.
pub(crate) enum Decision {
    Wrap,
    /// Admit it unwrapped, for this reason.
    Skip(String),
}

impl Pass<'_> {
    /// Wrap the pod, or admit it unwrapped (and why). Refusals are errors.
    pub(crate) fn decide(&self, warnings: &mut Vec<String>) -> Result<Decision, MutateError> {
        if self
            .spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            warnings.push(
                "spec.ephemeralContainers are not wrapped when a pod is created (kubectl debug adds them through the ephemeralcontainers subresource, where landgate wraps them)".to_owned(),
            );
        }
        Ok(match self.skip_reason(warnings)? {
            Some(reason) => Decision::Skip(reason),
            None => Decision::Wrap,
        })
    }

    /// `landgate.dev/io-uring: allow` gives up TCP enforcement, which a
    /// container that requires enforcement cannot accept.
    pub(crate) fn check_io_uring(&self, view: &View) -> Result<(), MutateError> {
        match (view.settings.enforcement, &view.settings.allow_io_uring) {
            (Enforcement::Required, Some(origin)) => Err(MutateError::IoUringUnderRequired {
                pod: self.label.clone(),
                container: view.current.name.clone(),
                enforcement_origin: view.settings.enforcement_origin.to_string(),
                io_uring_origin: origin.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The first container that requires enforcement, if any.
    pub(crate) fn requiring(&self) -> Option<&View<'_>> {
        self.views
            .iter()
            .find(|v| v.settings.enforcement == Enforcement::Required)
    }

    pub(crate) fn unreachable(
        &self,
        why: String,
        fix: &'static str,
    ) -> Result<Option<String>, MutateError> {
        match self.requiring() {
            Some(view) => Err(MutateError::EnforcementUnreachable {
                pod: self.label.clone(),
                container: view.current.name.clone(),
                origin: view.settings.enforcement_origin.to_string(),
                why,
                fix,
            }),
            None => Ok(Some(why)),
        }
    }

    /// Why the pod is admitted unwrapped, if it is.
    pub(crate) fn skip_reason(
        &self,
        warnings: &mut Vec<String>,
    ) -> Result<Option<String>, MutateError> {
        if self.views.is_empty() {
            return Ok(Some("pod has no containers".into()));
        }
        let windows = self.spec.os.as_ref().is_some_and(|os| os.name == "windows")
            || self
                .spec
                .node_selector
                .as_ref()
                .and_then(|s| s.get("kubernetes.io/os"))
                .is_some_and(|os| os == "windows");
        if windows {
            return self.unreachable(
                "it is a Windows pod and Landlock is Linux-only".into(),
                "run it on Linux nodes, or allow best-effort enforcement for it",
            );
        }
        if let Some(origin) = self.annotations.opt_out() {
            return self.unreachable(
                format!("it opts out of landgate ({origin} = \"false\")"),
                "remove the opt-out, or allow best-effort enforcement for it",
            );
        }
        let unknown: Vec<&View> = self
            .views
            .iter()
            .filter(|v| v.entrypoint_unknown())
            .collect();
        let Some(first) = unknown.first() else {
            return Ok(None);
        };
        let sets = if first.original.args.as_ref().is_some_and(|a| !a.is_empty()) {
            "only `args`, no `command`"
        } else {
            "neither `command` nor `args`"
        };
        let refuse = |because: String| MutateError::UnknownEntrypoint {
            pod: self.label.clone(),
            container: first.current.name.clone(),
            field: format!("{}.command", first.field()),
            what: format!(
                "{sets}, so its image entrypoint is unknown at admission{}",
                lookup_failure(first)
            ),
            because,
        };
        if let Some(view) = self.requiring() {
            return Err(refuse(format!(
                "container {:?} requires enforcement ({} = required) and a pod is never half-wrapped",
                view.current.name, view.settings.enforcement_origin
            )));
        }
        if self.settings.unknown_entrypoint == UnknownEntrypoint::Reject {
            return Err(refuse(
                "the webhook runs with --unknown-entrypoint=reject".into(),
            ));
        }
        let names: Vec<String> = unknown
            .iter()
            .map(|v| format!("{:?}{}", v.current.name, lookup_failure(v)))
            .collect();
        let reason = format!(
            "image entrypoint unknown for container {} (no `command`): the whole pod runs unsandboxed; set `command:` to sandbox it",
            names.join(", ")
        );
        warnings.push(reason.clone());
        Ok(Some(reason))
    }

    /// What the resolved image of a wrapped container costs: an image with
    /// nothing to run is refused; a multi-platform image whose platforms
    /// disagree was judged for one platform only (refused under
    /// `required`); a tag left unpinned may move.
    pub(crate) fn check_image(
        &self,
        view: &View,
        warnings: &mut Vec<String>,
    ) -> Result<(), MutateError> {
        let Some(config) = view.image() else {
            return Ok(());
        };
        let name = &view.current.name;
        let image = view.current.image.as_deref().unwrap_or_default();
        if view.from_image.command && view.original.command.as_ref().is_none_or(Vec::is_empty) {
            return Err(MutateError::NothingToRun {
                pod: self.label.clone(),
                container: name.clone(),
                field: format!("{}.command", view.field()),
                image: image.to_owned(),
            });
        }
        if let Some(disagreement) = &config.platform_disagreement {
            let platforms = format!("the platforms of image {image:?} disagree ({disagreement})");
            if view.settings.enforcement == Enforcement::Required {
                return Err(MutateError::PlatformsDisagree {
                    pod: self.label.clone(),
                    container: name.clone(),
                    platforms,
                    origin: view.settings.enforcement_origin.to_string(),
                });
            }
            warnings.push(format!(
                "container {name:?}: {platforms}; its command, PATH and policy were derived for one platform, and a node of another runs something else"
            ));
        }
        if !self.settings.pin_digests && !is_pinned(image) {
            warnings.push(format!(
                "container {name:?}: image {image:?} resolved to {} but is not pinned to it (--pin-digests=false): the tag may move after admission and run another entrypoint under this policy",
                config.digest
            ));
        }
        Ok(())
    }

    /// Names and volume paths landgate needs must be free (on a later pass,
    /// landgate-init, the volume and the mounts of wrapped containers are
    /// landgate's own, verified in [`Pass::read`]). A container that
    /// mounts the launcher volume itself, or anything at or beneath
    /// `/landgate`, could replace the launcher that every other container,
    /// probe and hook runs through.
    pub(crate) fn check_reserved(&self) -> Result<(), MutateError> {
        let reserved = |field: String, what: String, fix: &'static str| MutateError::Reserved {
            pod: self.label.clone(),
            field,
            what,
            fix,
        };
        if let Some(pos) = self.init_pos.filter(|_| !self.wrapped_before) {
            return Err(reserved(
                format!("spec.initContainers[{pos}]"),
                format!("is named {INIT_CONTAINER:?}"),
                "rename that init container",
            ));
        }
        // Any other container of that name (an app container, or one a later
        // webhook added on reinvocation): names are unique across the lists.
        if let Some(view) = self.views.iter().find(|v| v.current.name == INIT_CONTAINER) {
            return Err(reserved(
                view.field(),
                format!("is named {INIT_CONTAINER:?}"),
                "rename that container",
            ));
        }
        if let Some(pos) = self.volume_pos.filter(|_| !self.wrapped_before) {
            return Err(reserved(
                format!("spec.volumes[{pos}]"),
                format!("is named {VOLUME:?}"),
                "rename the volume (and its volumeMounts)",
            ));
        }
        let volumes = self.spec.volumes.as_deref().unwrap_or_default();
        let mount_error = |error| MutateError::Mount {
            pod: self.label.clone(),
            error: Box::new(error),
        };
        for view in &self.views {
            let recorded = self.record_of(&view.current.name).is_some();
            let field = view.field();
            mount_path::check(
                Mounts::of_container(&field, view.current),
                volumes,
                |m| recorded && *m == launcher_mount(),
                true,
            )
            .map_err(mount_error)?;
        }
        // A pod is created without ephemeral containers (the API server
        // refuses them); checked anyway, as never wrapped.
        for (i, e) in self.spec.ephemeral_containers.iter().flatten().enumerate() {
            let field = format!("spec.ephemeralContainers[{i}]");
            mount_path::check(Mounts::of_ephemeral(&field, e), volumes, |_| false, false)
                .map_err(mount_error)?;
        }
        Ok(())
    }

    /// Reports the directories on the container's PATH that sandboxed code
    /// can write, refusing them under `required`: until every exec runs
    /// through the launcher, a program planted there runs unsandboxed when
    /// `kubectl exec` names it. Judges the PATH the container really gets:
    /// its current one past `/landgate/bin` (what a forged status claims
    /// does not matter), else `--default-path`.
    pub(crate) fn check_path_dirs(
        &self,
        view: &View,
        policy: &Policy,
        warnings: &mut Vec<String>,
    ) -> Result<(), MutateError> {
        let name = &view.current.name;
        let required = view.settings.enforcement == Enforcement::Required;
        let refuse = |why: String| MutateError::UnsafePath {
            pod: self.label.clone(),
            container: name.clone(),
            why,
            origin: view.settings.enforcement_origin.to_string(),
        };
        let env = view.current.env.as_deref().unwrap_or_default();
        let path = match last_path(env) {
            Some((_, var)) if var.value_from.is_some() => {
                // The warning is wrap_container's.
                return match required {
                    true => Err(refuse(
                        "PATH comes from valueFrom: landgate can neither put /landgate/bin first nor see its directories".to_owned(),
                    )),
                    false => Ok(()),
                };
            }
            Some((_, var)) => strip_path(var.value.as_deref().unwrap_or_default()),
            None => self.image_path(view),
        };
        let Some(fs) = &policy.fs else {
            warnings.push(format!(
                "container {name:?}: profile ports-only sets no filesystem rules, so the directories on PATH ({path}) are as writable as file permissions allow; a program planted there runs unsandboxed when `kubectl exec` names it"
            ));
            return Ok(());
        };
        let dirs = derive::path_dirs(fs, &self.shared_writable(view.current), path);
        if required {
            if let Some(dir) = dirs.writable.first() {
                return Err(refuse(format!(
                    "PATH has {dir}, which sandboxed code can write"
                )));
            }
            if let Some(entry) = dirs.unjudged.first() {
                return Err(refuse(format!(
                    "PATH entry {entry:?} cannot be judged at admission (empty, relative, with `..` or a $(VAR) reference)"
                )));
            }
        }
        for dir in dirs.writable {
            warnings.push(format!(
                "container {name:?}: PATH directory {dir} is writable by sandboxed code; a program planted there runs unsandboxed when `kubectl exec` names it. Take it off PATH or mount it read-only in every container"
            ));
        }
        for entry in dirs.unjudged {
            warnings.push(format!(
                "container {name:?}: PATH entry {entry:?} cannot be judged at admission (empty, relative, with `..` or a $(VAR) reference); if it is writable, a program planted there runs unsandboxed when `kubectl exec` names it"
            ));
        }
        Ok(())
    }

    /// Where `c` mounts a volume that some container of the pod mounts
    /// writable (a shared emptyDir read-only here, written by a sidecar, or
    /// by a debug container `kubectl debug` added: none at creation).
    pub(crate) fn shared_writable(&self, c: &Container) -> Vec<AbsPath> {
        c.volume_mounts
            .iter()
            .flatten()
            .filter(|m| self.written.contains(m.name.as_str()))
            .filter_map(|m| mount_path::normalise(&m.mount_path).ok())
            .collect()
    }
}
