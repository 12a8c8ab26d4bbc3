//! A `volumeMounts[].mountPath` as the container will see it, and the
//! mounts a container of a wrapped pod may not have.
//!
//! The kubelet makes a relative mountPath absolute by joining it to `/` and
//! cleaning it (`volumeutil.MakeAbsolutePath`); an absolute one goes to the
//! runtime as written, and runc resolves it inside the container's root
//! filesystem, `..` included. Every check and every policy rule compares the
//! normalised path, never the raw string: `landgate/bin`, `//landgate` and
//! `/./landgate/` all reach the launcher directory.
//!
//! `..` is refused rather than cleaned: runc resolves it after following
//! the image's symlinks (`/x/..` is the parent of wherever `/x` points), so a
//! lexical clean can name a different directory from the one mounted, and
//! no rule derived from it could be trusted.

use k8s_openapi::api::core::v1::{
    Container, EphemeralContainer, Volume, VolumeDevice, VolumeMount,
};
use landgate_policy::AbsPath;

use crate::derive::{in_launcher_dir, launcher_dir_path};

/// The launcher volume's name (see `mutate`).
pub const LAUNCHER_VOLUME: &str = "landgate";

/// Why a mountPath cannot be used in a wrapped pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountPathError {
    #[error("is empty")]
    Empty,
    #[error(
        "{0:?} contains `..`, which the runtime resolves through the image's symlinks; write the absolute path without `..`"
    )]
    ParentDir(String),
}

/// Normalises `raw` the way the kubelet and runc will place the mount.
pub fn normalise(raw: &str) -> Result<AbsPath, MountPathError> {
    if raw.is_empty() {
        return Err(MountPathError::Empty);
    }
    // Rooting turns a relative path into the kubelet's; `.`, repeated and
    // trailing slashes go, as `Path::components` drops them.
    AbsPath::rooted(raw).ok_or_else(|| MountPathError::ParentDir(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("/data", "/data")]
    #[case("data", "/data")]
    #[case("landgate/bin", "/landgate/bin")]
    #[case("//landgate", "/landgate")]
    #[case("/./landgate/bin/", "/landgate/bin")]
    #[case("./srv//cache/.", "/srv/cache")]
    #[case("/", "/")]
    #[case(".", "/")]
    fn normalises_like_the_kubelet(#[case] raw: &str, #[case] want: &str) {
        assert_eq!(normalise(raw).unwrap().to_string(), want);
    }

    #[rstest::rstest]
    #[case("/x/../landgate")]
    #[case("..")]
    #[case("a/../../landgate")]
    fn refuses_parent_components(#[case] raw: &str) {
        assert_eq!(
            normalise(raw),
            Err(MountPathError::ParentDir(raw.to_owned()))
        );
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(normalise(""), Err(MountPathError::Empty));
    }
}

/// Why a container's mounts cannot be part of a wrapped pod. Each message
/// names the container and the field; the engine adds the pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error(
        "container {container:?} ({field}) mounts volume \"landgate\" at {path:?}, which landgate reserves for its launcher; remove that mount: only landgate mounts its launcher volume, read-only, at /landgate"
    )]
    LauncherVolume {
        container: String,
        field: String,
        path: String,
    },
    #[error(
        "container {container:?} ({field}) uses volume \"landgate\" as a device, which landgate reserves for its launcher; remove it: only landgate mounts its launcher volume"
    )]
    LauncherDevice { container: String, field: String },
    #[error(
        "container {container:?} ({field}) {what} at {path}, which landgate reserves for its launcher; mount it somewhere else: landgate mounts its launcher at /landgate"
    )]
    UnderLauncherDir {
        container: String,
        field: String,
        what: String,
        path: AbsPath,
    },
    #[error("container {container:?} ({field}) {error}")]
    Path {
        container: String,
        field: String,
        error: MountPathError,
    },
    #[error(
        "container {container:?} ({field}) mounts at {path}, inside volume {parent_volume:?} mounted at {parent}, whose content the pod controls: a symlink planted there would make the runtime put this mount wherever it points, /landgate included. Mount it beside that volume, not inside it (mounts inside configMap, secret, downwardAPI and projected volumes are fine)"
    )]
    Nested {
        container: String,
        field: String,
        path: AbsPath,
        parent: AbsPath,
        parent_volume: String,
    },
}

/// The mount-related fields of a container of any kind.
#[derive(Debug, Clone, Copy)]
pub struct Mounts<'a> {
    pub container: &'a str,
    /// Where the container is, e.g. `spec.containers[0]`.
    pub field: &'a str,
    pub volume_mounts: &'a [VolumeMount],
    pub volume_devices: &'a [VolumeDevice],
    pub termination_message_path: Option<&'a str>,
}

impl<'a> Mounts<'a> {
    pub fn of_container(field: &'a str, c: &'a Container) -> Self {
        Self {
            container: &c.name,
            field,
            volume_mounts: c.volume_mounts.as_deref().unwrap_or_default(),
            volume_devices: c.volume_devices.as_deref().unwrap_or_default(),
            termination_message_path: c.termination_message_path.as_deref(),
        }
    }

    pub fn of_ephemeral(field: &'a str, c: &'a EphemeralContainer) -> Self {
        Self {
            container: &c.name,
            field,
            volume_mounts: c.volume_mounts.as_deref().unwrap_or_default(),
            volume_devices: c.volume_devices.as_deref().unwrap_or_default(),
            termination_message_path: c.termination_message_path.as_deref(),
        }
    }
}

/// Checks one container of a wrapped pod: nothing of the pod may be
/// mounted over the launcher, by name, by path or through a symlink.
/// `is_own` says which mount is landgate's own (a wrapped container's one
/// read-only `/landgate` mount, verified by the engine); `gets_launcher`
/// says whether the container has or will get that mount, so that it too is
/// checked for nesting.
pub fn check(
    of: Mounts<'_>,
    volumes: &[Volume],
    is_own: impl Fn(&VolumeMount) -> bool,
    gets_launcher: bool,
) -> Result<(), MountError> {
    let container = || of.container.to_owned();
    // Field names and messages are built only for a refusal: this runs for
    // every mount of every container of every review.
    let mount_field = |i: usize| format!("{}.volumeMounts[{i}]", of.field);
    let device_field = |i: usize| format!("{}.volumeDevices[{i}]", of.field);
    let log_field = || format!("{}.terminationMessagePath", of.field);
    // Where the kubelet will place something, refused at or beneath
    // /landgate.
    let place = |raw: &str, field: &dyn Fn() -> String, sub: &str, what: &dyn Fn() -> String| {
        let path = normalise(raw).map_err(|error| MountError::Path {
            container: container(),
            field: format!("{}{sub}", field()),
            error,
        })?;
        if in_launcher_dir(&path) {
            return Err(MountError::UnderLauncherDir {
                container: container(),
                field: field(),
                what: what(),
                path,
            });
        }
        Ok(path)
    };
    let mut placed: Vec<(AbsPath, &str, usize)> = Vec::with_capacity(of.volume_mounts.len());
    for (i, mount) in of.volume_mounts.iter().enumerate() {
        if is_own(mount) {
            continue;
        }
        if mount.name == LAUNCHER_VOLUME {
            return Err(MountError::LauncherVolume {
                container: container(),
                field: mount_field(i),
                path: mount.mount_path.clone(),
            });
        }
        let what = || format!("mounts volume {:?}", mount.name);
        let path = place(&mount.mount_path, &|| mount_field(i), ".mountPath", &what)?;
        placed.push((path, &mount.name, i));
    }
    for (i, device) in of.volume_devices.iter().enumerate() {
        if device.name == LAUNCHER_VOLUME {
            return Err(MountError::LauncherDevice {
                container: container(),
                field: device_field(i),
            });
        }
        let what = || format!("places device {:?}", device.name);
        place(
            &device.device_path,
            &|| device_field(i),
            ".devicePath",
            &what,
        )?;
    }
    // The kubelet bind-mounts the termination log file there.
    if let Some(raw) = of.termination_message_path {
        place(raw, &log_field, "", &|| {
            "has its termination log".to_owned()
        })?;
    }
    // Runtimes mount in order of depth and resolve each destination
    // through the symlinks already in place (runc's SecureJoin): a mount
    // inside a volume whose content the pod can shape lands wherever a
    // planted symlink points, above landgate's shallower /landgate mount.
    let launcher = launcher_dir_path();
    let children = placed
        .iter()
        .map(|(path, _, i)| (path, Some(*i)))
        .chain(gets_launcher.then_some((launcher, None)));
    for (path, mount) in children {
        let parent = placed.iter().find(|(parent, volume, _)| {
            path != parent && path.is_within(parent) && !kubelet_written(volumes, volume)
        });
        if let Some((parent, volume, _)) = parent {
            return Err(MountError::Nested {
                container: container(),
                field: mount.map_or_else(|| "the launcher mount".to_owned(), mount_field),
                path: path.clone(),
                parent: parent.clone(),
                parent_volume: (*volume).to_owned(),
            });
        }
    }
    Ok(())
}

/// configMap, secret, downwardAPI and projected volumes hold only what the
/// kubelet writes (files, and its own `..data` links): no pod can plant a
/// symlink in them.
fn kubelet_written(volumes: &[Volume], name: &str) -> bool {
    volumes.iter().find(|v| v.name == name).is_some_and(|v| {
        v.config_map.is_some()
            || v.secret.is_some()
            || v.downward_api.is_some()
            || v.projected.is_some()
    })
}
