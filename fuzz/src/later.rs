//! What other admission plugins do to a pod between two landgate passes
//! (`reinvocationPolicy: IfNeeded`): the [`Edit`]s of a
//! [`PodModel`](crate::pod::PodModel), applied to landgate's first answer.

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use k8s_openapi::api::core::v1::{
    Container, Pod, PodSpec, ProjectedVolumeSource, ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use landgate_engine::mutate::{INIT_CONTAINER_NAME, SERVICE_ACCOUNT_TOKEN_DIR};

use crate::pod::{
    AnnotationModel, ContainerModel, EnvModel, IMAGES, MountModel, Text, VolumeModel, add_volume,
    list, token_projection, words,
};

/// What another admission plugin or webhook does to the pod after landgate.
#[derive(Arbitrary, Debug, Clone)]
pub enum Edit {
    AppendContainer(ContainerModel),
    AppendInitContainer(ContainerModel),
    PrependInitContainer(ContainerModel),
    AddMount {
        target: u8,
        mount: MountModel,
    },
    AddEnv {
        target: u8,
        env: EnvModel,
    },
    RemoveEnv {
        target: u8,
        index: u8,
    },
    SetCommand {
        target: u8,
        command: Option<Vec<Text>>,
    },
    SetAnnotation(AnnotationModel),
    RemoveAnnotation(u8),
    AddVolume(VolumeModel),
    /// The ServiceAccount admission plugin: a projected token volume,
    /// mounted read-only in every container.
    ServiceAccountToken,
    /// Fields the API server defaults, and LimitRanger's resources.
    ApiServerDefaults,
    MoveInitContainer(u8),
    SetImage {
        target: u8,
        image: Text,
    },
}

/// Every container the engine sees, init containers first (as `target`s
/// index them).
fn containers_mut(spec: &mut PodSpec) -> Vec<&mut Container> {
    spec.init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
        .collect()
}

fn target_mut(spec: &mut PodSpec, target: u8) -> Option<&mut Container> {
    let mut all = containers_mut(spec);
    if all.is_empty() {
        return None;
    }
    let i = usize::from(target) % all.len();
    Some(all.swap_remove(i))
}

impl Edit {
    pub fn apply(&self, pod: &mut Pod) {
        match self {
            Edit::SetAnnotation(model) => {
                let (key, value) = model.entry();
                pod.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key, value);
            }
            Edit::RemoveAnnotation(index) => {
                let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
                let key = annotations
                    .keys()
                    .nth(usize::from(*index) % annotations.len().max(1))
                    .cloned();
                if let Some(key) = key {
                    annotations.remove(&key);
                }
                if annotations.is_empty() {
                    pod.metadata.annotations = None;
                }
            }
            _ => {
                if let Some(spec) = pod.spec.as_mut() {
                    self.apply_to_spec(spec);
                }
            }
        }
    }

    fn apply_to_spec(&self, spec: &mut PodSpec) {
        match self {
            Edit::SetAnnotation(_) | Edit::RemoveAnnotation(_) => {}
            Edit::AppendContainer(c) => spec.containers.push(c.container(false)),
            Edit::AppendInitContainer(c) => spec
                .init_containers
                .get_or_insert_with(Vec::new)
                .push(c.container(true)),
            Edit::PrependInitContainer(c) => spec
                .init_containers
                .get_or_insert_with(Vec::new)
                .insert(0, c.container(true)),
            Edit::AddMount { target, mount } => {
                if let Some(c) = target_mut(spec, *target) {
                    c.volume_mounts
                        .get_or_insert_with(Vec::new)
                        .push(mount.volume_mount());
                }
            }
            Edit::AddEnv { target, env } => {
                if let Some(c) = target_mut(spec, *target) {
                    c.env.get_or_insert_with(Vec::new).push(env.env_var());
                }
            }
            Edit::RemoveEnv { target, index } => {
                if let Some(c) = target_mut(spec, *target)
                    && let Some(env) = c.env.as_mut()
                    && !env.is_empty()
                {
                    env.remove(usize::from(*index) % env.len());
                    if env.is_empty() {
                        c.env = None;
                    }
                }
            }
            Edit::SetCommand { target, command } => {
                if let Some(c) = target_mut(spec, *target) {
                    c.command = command.as_deref().map(words).and_then(list);
                }
            }
            Edit::AddVolume(volume) => add_volume(spec, volume.volume()),
            Edit::ServiceAccountToken => {
                let name = "kube-api-access-sa";
                add_volume(
                    spec,
                    Volume {
                        name: name.to_owned(),
                        projected: Some(ProjectedVolumeSource {
                            sources: Some(vec![token_projection()]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                );
                for c in containers_mut(spec) {
                    c.volume_mounts
                        .get_or_insert_with(Vec::new)
                        .push(VolumeMount {
                            name: name.to_owned(),
                            mount_path: SERVICE_ACCOUNT_TOKEN_DIR.to_owned(),
                            read_only: Some(true),
                            ..Default::default()
                        });
                }
            }
            Edit::ApiServerDefaults => {
                for c in containers_mut(spec) {
                    c.image_pull_policy
                        .get_or_insert_with(|| "IfNotPresent".to_owned());
                    c.termination_message_path
                        .get_or_insert_with(|| "/dev/termination-log".to_owned());
                    c.termination_message_policy
                        .get_or_insert_with(|| "File".to_owned());
                    c.resources.get_or_insert_with(|| ResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "cpu".to_owned(),
                            Quantity("100m".to_owned()),
                        )])),
                        ..Default::default()
                    });
                }
            }
            Edit::MoveInitContainer(to) => {
                if let Some(init) = spec.init_containers.as_mut()
                    && let Some(from) = init.iter().position(|c| c.name == INIT_CONTAINER_NAME)
                {
                    let c = init.remove(from);
                    let to = usize::from(*to) % (init.len() + 1);
                    init.insert(to, c);
                }
            }
            Edit::SetImage { target, image } => {
                if let Some(c) = target_mut(spec, *target) {
                    c.image = image.non_empty(IMAGES);
                }
            }
        }
    }
}
