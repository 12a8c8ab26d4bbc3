//! Absolute, normalised paths: the only kind a policy holds.

use std::fmt;
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

    /// True when `self` is `other` or lies beneath it.
    pub fn is_within(&self, other: &AbsPath) -> bool {
        self.0.starts_with(&other.0)
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
