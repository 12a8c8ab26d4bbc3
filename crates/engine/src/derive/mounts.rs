//! What a container's volume mounts let it write.

use k8s_openapi::api::core::v1::{Container, Volume, VolumeMount};
use landgate_policy::{AbsPath, layout};

/// The container's volume mounts, split into writable and read-only.
/// configMap, secret, downwardAPI, projected and image volumes are always
/// mounted read-only by the kubelet, whatever the mount says.
pub(super) fn mounts(
    container: &Container,
    volumes: &[Volume],
    warn: &mut impl FnMut(String),
) -> (Vec<AbsPath>, Vec<AbsPath>) {
    let (mut rw, mut ro) = (Vec::new(), Vec::new());
    for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
        // The engine refuses a wrapped pod whose mountPath does not
        // normalise, before anything is derived; a direct caller is told.
        let path = match crate::mount_path::normalise(&mount.mount_path) {
            Ok(path) => path,
            Err(err) => {
                warn(format!("volumeMounts[{i}].mountPath ignored: it {err}"));
                continue;
            }
        };
        if layout::in_dir(&path) {
            // landgate's own mount (the engine refuses every other one).
            continue;
        }
        if !mounts_writable(mount, volumes) {
            ro.push(path);
        } else {
            rw.push(path);
        }
    }
    (rw, ro)
}

/// True when `mount` lets its container write: not `readOnly`, and not a
/// configMap, secret, downwardAPI, projected or image volume, which the
/// kubelet always mounts read-only whatever the mount says.
pub fn mounts_writable(mount: &VolumeMount, volumes: &[Volume]) -> bool {
    let always_read_only = volumes
        .iter()
        .find(|v| v.name == mount.name)
        .is_some_and(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
                || v.image.is_some()
        });
    !mount.read_only.unwrap_or(false) && !always_read_only
}
