//! Support for landgate's fuzz targets (`fuzz_targets/`, run by `just fuzz`).
//!
//! - [`props`]: the properties every target checks. The file lives in the
//!   webhook's tests (`crates/webhook/tests/fuzz_props/mod.rs`), where the stable
//!   regression test replays committed findings through it; it is included
//!   here by path so that there is one copy of each property.
//! - [`pod`], [`later`], [`annotations`]: the structure-aware models
//!   (`arbitrary`), which turn fuzzer bytes into the plain cases `props`
//!   checks: a pod, what later admission plugins change in landgate's
//!   answer, and annotation maps.
//! - [`dump`]: writes those cases as JSON, to grow the regression corpus.

#[path = "../../crates/webhook/tests/fuzz_props/mod.rs"]
pub mod props;

pub mod annotations;
pub mod dump;
pub mod later;
pub mod pod;

/// Fails the fuzz run on a violated property.
pub fn check<T>(target: &str, checked: Result<T, String>) -> T {
    checked.unwrap_or_else(|violation| panic!("{target}: property violated: {violation}"))
}
