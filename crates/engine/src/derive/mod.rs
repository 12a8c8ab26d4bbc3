//! Every rule about what a container may do. Pure.
//!
//! [`Annotations`] validates a pod's and its namespace's `landgate.dev/*`
//! annotations, refuses a pod's that would loosen its namespace's floors,
//! and resolves them, once per container, into
//! [`ContainerSettings`]; [`derive_policy`] turns those settings, the
//! container and the pod's volumes into its
//! [`Policy`](landgate_policy::Policy) and the warnings it costs.
//! [`mounts_writable`] and [`path_dirs`] tell the engine what a container can
//! write beyond its own policy.

mod annotations;
#[cfg(test)]
mod fixtures;
mod mounts;
mod path_dirs;
mod policy;
mod ports;

pub use annotations::{
    ALLOW_OPT_OUT, ALLOW_POD_PATHS, ANNOTATION_PREFIX, AnnotationError, Annotations, CONNECT_PORTS,
    ContainerSettings, ENFORCEMENT, EXEC, ExecPolicy, FloorError, INJECT, IO_URING, Key, Origin,
    PROFILE, READABLE_PATHS, STATUS, WRITABLE_PATHS, exec_policy, exec_said,
};
pub use mounts::mounts_writable;
pub use path_dirs::{PathDirs, path_dirs};
pub use policy::{Derived, derive_policy};

// The launcher directory is the contract's (`landgate_policy::layout`); these
// names stay so that callers of `derive::` need not change. Nothing of the pod
// may be mounted there or made writable beneath it.
pub use landgate_policy::layout::{
    DIR as LAUNCHER_DIR, dir_path as launcher_dir_path, in_dir as in_launcher_dir,
};
