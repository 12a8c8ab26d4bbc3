//! The first phase: a pod's containers, names, annotations and status read
//! once, each container's settings resolved once (flags < namespace
//! annotations < pod annotations), and any previous pass verified
//! (`reinvoke`) before anything is decided.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use landgate_policy::layout::{INIT_CONTAINER, VOLUME};

use crate::derive::{self, Annotations, ContainerSettings};
use crate::error::MutateError;
use crate::image::{ImageConfig, ImageLookup};
use crate::mutate::PodContext;
use crate::settings::Settings;
use crate::status::{Status, WrappedContainer, parse_status};

/// Which list a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum List {
    Init,
    App,
    /// `kubectl debug`'s, added through `pods/ephemeralcontainers`
    /// (`ephemeral`); never among a pass's views.
    Ephemeral,
}

impl List {
    pub(crate) fn json(self) -> &'static str {
        match self {
            List::Init => "initContainers",
            List::App => "containers",
            List::Ephemeral => "ephemeralContainers",
        }
    }
}

/// A container of the pod (not landgate-init), as found and as it was
/// before landgate touched it.
pub(crate) struct View<'a> {
    pub(crate) list: List,
    /// Index in the input pod's list.
    pub(crate) index: usize,
    pub(crate) current: &'a Container,
    /// The container without landgate's changes (a clone of `current` for
    /// containers landgate has not wrapped yet), with what its image
    /// resolved to filled in as the kubelet would: a container without
    /// `command` gets the image's Entrypoint, and its Cmd unless it sets
    /// `args`; one without `workingDir` gets the image's.
    pub(crate) original: Cow<'a, Container>,
    pub(crate) settings: ContainerSettings,
    /// Whether a previous pass wrapped it (its status record).
    pub(crate) recorded: bool,
    /// What the registry said about its image, if it was looked up.
    pub(crate) lookup: Option<&'a ImageLookup>,
    /// What landgate writes from the image config (none when the spec
    /// says it all, or the image was not resolved).
    pub(crate) from_image: FromImage,
}

/// The fields landgate writes into a container from its resolved image, so
/// that the pod states what was looked up (and a later pass, or a registry
/// that has moved on, cannot change it).
#[derive(Debug, Default)]
pub(crate) struct FromImage {
    /// `command` is written from the image (its Entrypoint, or with none its
    /// Cmd or the pod's `args`).
    pub(crate) command: bool,
    /// What `command` holds came from the image config, so the kubelet's
    /// `$(VAR)` expansion must not touch it (it never expands image values).
    pub(crate) command_from_config: bool,
    /// The image's Cmd, for a container without `command` nor `args` whose
    /// image has an Entrypoint (a `command` set without `args` would drop
    /// it).
    pub(crate) args: Option<Vec<String>>,
    /// The pod's `args` moved into `command` (an image without Entrypoint).
    pub(crate) drop_args: bool,
    /// The image's WorkingDir, for a container without one.
    pub(crate) working_dir: Option<String>,
}

impl View<'_> {
    pub(crate) fn field(&self) -> String {
        format!("spec.{}[{}]", self.list.json(), self.index)
    }

    /// The image config, when its lookup succeeded.
    pub(crate) fn image(&self) -> Option<&ImageConfig> {
        match self.lookup {
            Some(ImageLookup::Resolved(config)) => Some(config),
            _ => None,
        }
    }

    /// Whether what it runs is unknown: no `command`, and an image that was
    /// not resolved. A container a previous pass wrapped runs what its
    /// verified command says (possibly `exec --` and its args).
    pub(crate) fn entrypoint_unknown(&self) -> bool {
        !self.recorded
            && self.original.command.as_ref().is_none_or(Vec::is_empty)
            && self.image().is_none()
    }
}

/// `original` as the kubelet will run it from its image `config`, and what
/// landgate must write for the pod to say so.
pub(crate) fn fill_from_image(original: &mut Container, config: &ImageConfig) -> FromImage {
    let mut from = FromImage::default();
    if original.command.as_ref().is_none_or(Vec::is_empty) {
        let args = original.args.take().filter(|a| !a.is_empty());
        // containerd runs `ENTRYPOINT [""]` as no Entrypoint.
        let entrypoint = match config.entrypoint.as_slice() {
            [only] if only.is_empty() => &[][..],
            all => all,
        };
        from.command = true;
        if entrypoint.is_empty() {
            // What runs is the pod's args, else Cmd, whole: written into
            // `command` after `exec --`, so that a later pass reads the
            // wrapped command back (`exec --` alone is no command).
            from.drop_args = args.is_some();
            from.command_from_config = args.is_none();
            original.command = Some(args.unwrap_or_else(|| config.cmd.clone()));
        } else {
            from.command_from_config = true;
            original.command = Some(entrypoint.to_vec());
            match args {
                Some(args) => original.args = Some(args),
                None if !config.cmd.is_empty() => {
                    original.args = Some(config.cmd.clone());
                    from.args = Some(config.cmd.clone());
                }
                None => {}
            }
        }
    }
    if original.working_dir.as_deref().is_none_or(str::is_empty)
        && let Some(dir) = config.working_dir.as_ref().filter(|d| !d.is_empty())
    {
        original.working_dir = Some(dir.clone());
        from.working_dir = Some(dir.clone());
    }
    from
}

/// One pass of landgate over a pod: what was read, for the phases after.
pub(crate) struct Pass<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) pod: &'a Pod,
    pub(crate) spec: &'a PodSpec,
    pub(crate) label: String,
    pub(crate) annotations: Annotations,
    /// Parsed `landgate.dev/status`.
    pub(crate) status: Option<Status>,
    /// True when the status records wrapped containers (a previous pass).
    pub(crate) wrapped_before: bool,
    pub(crate) init_pos: Option<usize>,
    pub(crate) volume_pos: Option<usize>,
    pub(crate) views: Vec<View<'a>>,
    /// The volumes some container of the pod (a view, or an ephemeral
    /// container) mounts writable, by name: read once, asked of every
    /// container's PATH ([`Pass::shared_writable`]).
    pub(crate) written: BTreeSet<&'a str>,
}

impl<'a> Pass<'a> {
    pub(crate) fn read(
        settings: &'a Settings,
        context: PodContext<'a>,
        pod: &'a Pod,
        spec: &'a PodSpec,
        annotations: &'a BTreeMap<String, String>,
        label: String,
    ) -> Result<Self, MutateError> {
        let status = match annotations.get(derive::STATUS) {
            None => None,
            Some(raw) => Some(
                parse_status(raw).map_err(|problem| MutateError::InvalidStatus {
                    pod: label.clone(),
                    problem,
                })?,
            ),
        };
        let wrapped_before = status.as_ref().is_some_and(|s| !s.containers.is_empty());
        let init_containers = spec.init_containers.as_deref().unwrap_or_default();
        let init_pos = init_containers
            .iter()
            .position(|c| c.name == INIT_CONTAINER);
        let volume_pos = spec.volumes.iter().flatten().position(|v| v.name == VOLUME);

        let mut pass = Pass {
            settings,
            pod,
            spec,
            label,
            annotations: Annotations::default(),
            status,
            wrapped_before,
            init_pos,
            volume_pos,
            views: Vec::new(),
            written: BTreeSet::new(),
        };
        if wrapped_before {
            pass.verify_pod_level()?;
        }

        // Names first (the annotations name containers), each recorded
        // container verified as it is met: a tampered pod is refused before
        // its annotations are judged.
        let lists = [
            (List::Init, init_containers),
            (List::App, spec.containers.as_slice()),
        ];
        let mut found: Vec<(List, usize, &'a Container, Cow<'a, Container>)> =
            Vec::with_capacity(init_containers.len() + spec.containers.len());
        for (list, containers) in lists {
            for (index, container) in containers.iter().enumerate() {
                if wrapped_before && list == List::Init && Some(index) == init_pos {
                    continue;
                }
                if found.iter().any(|(_, _, c, _)| c.name == container.name) {
                    return Err(MutateError::DuplicateContainer {
                        pod: pass.label.clone(),
                        container: container.name.clone(),
                    });
                }
                let original = match pass.record_of(&container.name) {
                    Some(record) => {
                        Cow::Owned(pass.verify_container(list, index, container, record)?)
                    }
                    None => Cow::Borrowed(container),
                };
                found.push((list, index, container, original));
            }
        }

        let names: Vec<&str> = found.iter().map(|(_, _, c, _)| c.name.as_str()).collect();
        pass.annotations = Annotations::parse(
            annotations,
            context.namespace,
            context.namespace_annotations,
            &names,
        )
        .and_then(|parsed| {
            parsed.with_opt_out_label(pod.metadata.labels.as_ref(), context.namespace)
        })
        .map_err(|source| MutateError::Annotation {
            pod: pass.label.clone(),
            error: Box::new(source),
        })?;
        pass.views = found
            .into_iter()
            .map(|(list, index, current, mut original)| {
                let recorded = pass.record_of(&current.name).is_some();
                let lookup = current.image.as_ref().and_then(|i| context.images.get(i));
                let from_image = match lookup {
                    Some(ImageLookup::Resolved(config)) if !recorded => {
                        fill_from_image(original.to_mut(), config)
                    }
                    _ => FromImage::default(),
                };
                View {
                    list,
                    index,
                    current,
                    original,
                    settings: pass.annotations.for_container(settings, &current.name),
                    recorded,
                    lookup,
                    from_image,
                }
            })
            .collect();
        pass.written = written_volumes(spec, &pass.views);
        Ok(pass)
    }

    pub(crate) fn record_of(&self, name: &str) -> Option<&WrappedContainer> {
        self.status.as_ref().and_then(|s| s.containers.get(name))
    }
}

/// The names of the volumes that `views` or the pod's ephemeral containers
/// mount writable.
fn written_volumes<'a>(spec: &'a PodSpec, views: &[View<'a>]) -> BTreeSet<&'a str> {
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .flat_map(|e| e.volume_mounts.iter().flatten());
    views
        .iter()
        .flat_map(|v| v.current.volume_mounts.iter().flatten())
        .chain(ephemeral)
        .filter(|m| derive::mounts_writable(m, volumes))
        .map(|m| m.name.as_str())
        .collect()
}
