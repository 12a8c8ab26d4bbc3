//! What landgate adds to a pod: the `landgate-init` init container, the
//! in-memory `landgate` volume, and its read-only mount in every wrapped
//! container.
//!
//! The launcher image keeps its binary at `IMAGE_LAUNCHER`, not at
//! `/landgate`: landgate-init mounts the (read-write) volume at `/landgate`
//! and the mount would hide it; `landgate install` copies it to
//! `/landgate/landgate` and makes the `/landgate/bin/<name>` wrappers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, PodSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use landgate_policy::argv;
use landgate_policy::layout::{DIR, INIT_CONTAINER, VOLUME};

use crate::settings::Settings;

/// The launcher copy is ~1 MiB; the volume lives in memory.
pub const VOLUME_SIZE_LIMIT: &str = "16Mi";

/// The user the launcher image runs as (its `USER`); set explicitly on
/// landgate-init only when the pod asks for root, which the init container's
/// `runAsNonRoot` would otherwise refuse at start.
pub const LAUNCHER_UID: i64 = 65532;

/// The `landgate-init` init container. Its securityContext passes the
/// PodSecurity "restricted" standard: an injected container must never be
/// the reason a pod is refused.
pub fn init_container(settings: &Settings, spec: &PodSpec) -> Container {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    let pod_runs_as_root = spec.security_context.as_ref().and_then(|sc| sc.run_as_user) == Some(0);
    Container {
        name: INIT_CONTAINER.to_owned(),
        image: Some(settings.launcher_image.clone()),
        command: Some(argv::install(&settings.wrappers)),
        volume_mounts: Some(vec![VolumeMount {
            name: VOLUME.to_owned(),
            mount_path: DIR.to_owned(),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("10m", "16Mi")),
            limits: Some(quantities("100m", "32Mi")),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Default::default()
            }),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: pod_runs_as_root.then_some(LAUNCHER_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `landgate` volume.
pub fn launcher_volume() -> Volume {
    Volume {
        name: VOLUME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_owned()),
            size_limit: Some(Quantity(VOLUME_SIZE_LIMIT.to_owned())),
        }),
        ..Default::default()
    }
}

/// The read-only mount of the launcher volume in wrapped containers.
pub fn launcher_mount() -> VolumeMount {
    VolumeMount {
        name: VOLUME.to_owned(),
        mount_path: DIR.to_owned(),
        read_only: Some(true),
        ..Default::default()
    }
}
