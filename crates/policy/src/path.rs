//! Absolute, normalised paths: the only kind a policy holds.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::PolicyError;

/// An absolute, normalised path (no `.` or `..` components). Relative paths
/// would be resolved against whatever directory the launcher happens to run
/// in, so they are refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbsPath(PathBuf);

impl AbsPath {
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// True when `self` is `other` or lies beneath it. Both are normalised
    /// by construction (no `.`, `..`, repeated or trailing `/`), so whole
    /// components compare as bytes: `Path::starts_with`, which re-parses
    /// both into components, was the engine's hottest call.
    pub fn is_within(&self, other: &AbsPath) -> bool {
        let (path, base) = (
            self.0.as_os_str().as_bytes(),
            other.0.as_os_str().as_bytes(),
        );
        path.starts_with(base)
            && (path.len() == base.len() || base == b"/" || path[base.len()] == b'/')
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

impl AsRef<Path> for AbsPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl FromStr for AbsPath {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let path = Path::new(s);
        if !path.is_absolute() {
            return Err(PolicyError::RelativePath(s.to_owned()));
        }
        if path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(PolicyError::UnnormalisedPath(s.to_owned()));
        }
        // Components() drops duplicate and trailing slashes.
        Ok(Self(path.components().collect()))
    }
}

impl Serialize for AbsPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.to_str() {
            Some(s) => serializer.serialize_str(s),
            None => Err(serde::ser::Error::custom(format!(
                "path {} is not valid UTF-8",
                self.0.display()
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> AbsPath {
        s.parse().unwrap()
    }

    #[test]
    fn within_is_by_whole_components() {
        assert!(p("/data").is_within(&p("/data")));
        assert!(p("/data/x").is_within(&p("/data")));
        assert!(p("/data//x/").is_within(&p("/data/")));
        assert!(p("/anything").is_within(&p("/")));
        assert!(p("/").is_within(&p("/")));
        assert!(!p("/database").is_within(&p("/data")));
        assert!(!p("/data").is_within(&p("/data/x")));
        assert!(!p("/").is_within(&p("/data")));
    }
}
