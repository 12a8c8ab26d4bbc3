//! Policy → Landlock ruleset, one phase per file in the order the launcher
//! goes through them: what the kernel can enforce of a policy (`assess.rs`:
//! [`Capability`], [`Assessment`]), the policy resolved against this kernel
//! and filesystem (`plan.rs`: [`Plan`]), the status line and the refusal
//! (`report.rs`: [`Status`], [`Gap`]), `check`'s listing (`render.rs`), and
//! restricting the process (`apply.rs`).
//!
//! Every rule about what a sandboxed process may do at runtime lives here:
//! - `fs.rx` paths get read + execute (`from_read`) plus, when the ABI
//!   handles it, connecting to named UNIX sockets (`resolve_unix`, ABI 9:
//!   a read-only path must not stop a client from reaching a socket there),
//!   `fs.rw` paths every right the kernel's ABI handles; rules on
//!   non-directories keep only the rights that make sense for a file.
//!   Everything else is denied for every filesystem right the kernel's ABI
//!   handles (the highest ABI it offers).
//! - TCP bind/connect are handled only when the policy restricts them (a
//!   `null` list leaves them unrestricted); bind includes port 0 unless
//!   `bind_ephemeral` is false.
//! - Scopes as asked. UDP rights (ABI 10) are never handled: policy v1 has no
//!   UDP rules, so handling them would deny all UDP.
//! - io_uring is refused (seccomp) whenever TCP is restricted, unless the
//!   policy sets `allow_io_uring`.
//!
//! "FullyEnforced" means every restriction landgate policy v1 defines is
//! enforced: filesystem rules with truncation (ABI 3) and device ioctl
//! (ABI 5) control, TCP rules (ABI 4) that io_uring cannot get around,
//! scopes (ABI 6). Rights that newer kernels add (e.g. ABI 9's named UNIX
//! socket resolution) are handled when the kernel offers them, but their
//! absence is not a gap. `allow_io_uring` with TCP rules is a gap the policy
//! chose: the status is PartiallyEnforced, and `required` still runs.

mod apply;
mod assess;
mod plan;
mod render;
mod report;

pub use assess::{Assessment, Capability};
pub use plan::{FsPlan, PathRule, Plan, rx_access};
pub use render::NOT_RESTRICTED;
pub use report::{Gap, Status};

/// Shared by the unit tests of every phase.
#[cfg(test)]
mod testing {
    use crate::kernel::LandlockSupport;

    pub(super) fn avail(abi: u32) -> LandlockSupport {
        LandlockSupport::Available {
            abi,
            kernel_abi: abi,
        }
    }

    pub(super) const BASELINE: &str = r#"{"v":1,"fs":{"rx":["/"],"rw":["/tmp"]},"net":{"bind":[8080]},"scope":{"signal":true,"abstract_unix_socket":true}}"#;
}
