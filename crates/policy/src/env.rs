//! The environment variables the webhook writes and the launcher reads.

/// The policy JSON (see [`crate::Policy`]).
pub const POLICY: &str = "LANDGATE_POLICY";
/// Set (to `1`) in the command's environment once the sandbox is applied.
/// Wrappers that see it exec the real program without stacking another
/// Landlock layer (domains nest at most 16 deep). Forging it gains nothing
/// inside the sandbox; `landgate exec` ignores it and always applies. The
/// webhook sets it explicitly empty in every wrapped container so an image
/// ENV cannot pre-set it.
pub const ACTIVE: &str = "LANDGATE_ACTIVE";
/// `1`: the launcher prints no status line when fully enforced.
pub const QUIET: &str = "LANDGATE_QUIET";
/// Comma-separated wrapper names for `landgate install` without `--wrappers`.
pub const WRAPPERS: &str = "LANDGATE_WRAPPERS";
/// Every name landgate owns starts with this; the webhook strips a pod's own
/// `LANDGATE_*` variables from wrapped containers.
pub const PREFIX: &str = "LANDGATE_";

/// The PATH used when the environment has none (the kubelet's and glibc's
/// default); the webhook assumes it for images whose PATH it does not know.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
