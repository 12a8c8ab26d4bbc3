//! How an admission ended: the one outcome type. The engine returns it for
//! the pods it judges, admission for every review; logs, metrics and the
//! preview read it, and nothing writes it through `&mut`.

use std::fmt;

/// How one admission ended. Exhaustive on purpose: a new outcome must be
/// placed by every consumer (metrics labels, the log, the preview).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every container now runs through the launcher; the patch says how.
    Wrapped,
    /// A previous pass already wrapped the pod exactly like this: empty
    /// patch.
    AlreadyWrapped,
    /// Admitted without a sandbox, and why (opt-out, excluded namespace,
    /// Windows, mirror pod, unknown entrypoint, …). On a pass after a
    /// wrapping one the patch unwraps the pod: it is never half-wrapped.
    Skipped(String),
    /// Admitted unchanged without being judged, and why: a request landgate
    /// does not act on, or a pod update that leaves the sandbox alone.
    Passed(String),
    /// Refused: a short stable `reason` for metrics (kebab-case, one per
    /// kind of refusal: [`crate::MutateError::reason`], …) and the message
    /// the user sees.
    Refused {
        reason: &'static str,
        message: String,
    },
    /// landgate could not do its job (a pod it cannot read, a patch it
    /// cannot encode), with the message the user sees.
    Failed(String),
}

impl Outcome {
    /// Why, for the log line: `None` when the outcome says it all.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Wrapped => None,
            Self::AlreadyWrapped => Some("already wrapped"),
            Self::Skipped(why)
            | Self::Passed(why)
            | Self::Refused { message: why, .. }
            | Self::Failed(why) => Some(why),
        }
    }
}

/// The preview's `verdict` text.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wrapped => f.write_str("wrapped"),
            Self::AlreadyWrapped => f.write_str("already-wrapped"),
            Self::Skipped(why) => write!(f, "skipped: {why}"),
            Self::Passed(why) => write!(f, "passed: {why}"),
            Self::Refused { message, .. } => write!(f, "refused: {message}"),
            Self::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}
