//! Absolute, normalised paths: the only kind a policy holds.

use std::cmp::Ordering;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::PolicyError;

/// An absolute, normalised path: rooted, no `.` or `..` components, no
/// repeated or trailing `/`. Relative paths would be resolved against
/// whatever directory the launcher happens to run in, so they are refused.
///
/// Held as text: policies are JSON, so every path is UTF-8, and the engine
/// compares and sorts these in its hot path. Comparing a `PathBuf` re-parses
/// both sides into components on every call; normalised text compares the
/// same way byte by byte (see [`Ord`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AbsPath(String);

impl AbsPath {
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `raw` joined to `/` and cleaned the way the kubelet places a
    /// mountPath and `Path::components` reads a path: empty and `.`
    /// components dropped. `None` when a component is `..`, which only the
    /// filesystem can resolve (through symlinks), never the text.
    pub fn rooted(raw: &str) -> Option<Self> {
        let mut clean = true;
        for (i, part) in raw.split('/').enumerate() {
            match part {
                ".." => return None,
                // A leading empty part is the root itself; a lone `/` is
                // already clean.
                "" if i == 0 || raw == "/" => {}
                "" | "." => clean = false,
                _ => {}
            }
        }
        if clean && raw.starts_with('/') {
            return Some(Self(raw.to_owned()));
        }
        let mut path = String::with_capacity(raw.len() + 1);
        for part in raw.split('/').filter(|p| !p.is_empty() && *p != ".") {
            path.push('/');
            path.push_str(part);
        }
        if path.is_empty() {
            path.push('/');
        }
        Some(Self(path))
    }

    /// True when `self` is `other` or lies beneath it. Both are normalised
    /// by construction, so whole components compare as bytes.
    pub fn is_within(&self, other: &AbsPath) -> bool {
        let (path, base) = (self.0.as_bytes(), other.0.as_bytes());
        path.starts_with(base)
            && (path.len() == base.len() || base == b"/" || path[base.len()] == b'/')
    }
}

/// The order of `Path`'s components (a parent before its children, `/a/b`
/// before `/a-b`), computed on the text: in normalised paths `/` only
/// separates components, so ranking it below every other byte makes the
/// byte order the component order.
impl Ord for AbsPath {
    fn cmp(&self, other: &Self) -> Ordering {
        let rank = |b: u8| if b == b'/' { 0 } else { u16::from(b) + 1 };
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        match a.iter().zip(b).position(|(x, y)| x != y) {
            Some(i) => rank(a[i]).cmp(&rank(b[i])),
            None => a.len().cmp(&b.len()),
        }
    }
}

impl PartialOrd for AbsPath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<Path> for AbsPath {
    fn as_ref(&self) -> &Path {
        self.as_path()
    }
}

impl FromStr for AbsPath {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.starts_with('/') {
            return Err(PolicyError::RelativePath(s.to_owned()));
        }
        Self::rooted(s).ok_or_else(|| PolicyError::UnnormalisedPath(s.to_owned()))
    }
}

impl Serialize for AbsPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
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

    #[test]
    fn parses_like_path_components() {
        for (raw, want) in [
            ("/", "/"),
            ("//", "/"),
            ("/a/./b/", "/a/b"),
            ("/a//b", "/a/b"),
            ("/a/.", "/a"),
            ("/.", "/"),
            ("/data", "/data"),
        ] {
            assert_eq!(p(raw).as_str(), want, "{raw}");
            let components: std::path::PathBuf = Path::new(raw).components().collect();
            assert_eq!(p(raw).as_path(), components, "{raw}");
        }
        assert!(matches!(
            "a/b".parse::<AbsPath>(),
            Err(PolicyError::RelativePath(_))
        ));
        assert!(matches!(
            "/a/../b".parse::<AbsPath>(),
            Err(PolicyError::UnnormalisedPath(_))
        ));
        assert!(matches!(
            "/..".parse::<AbsPath>(),
            Err(PolicyError::UnnormalisedPath(_))
        ));
    }

    #[test]
    fn rooted_joins_to_root() {
        assert_eq!(
            AbsPath::rooted("srv//cache/.").unwrap().as_str(),
            "/srv/cache"
        );
        assert_eq!(AbsPath::rooted(".").unwrap().as_str(), "/");
        assert_eq!(AbsPath::rooted("").unwrap().as_str(), "/");
        assert_eq!(AbsPath::rooted("a/../b"), None);
    }

    /// The text order must be `Path`'s component order: policies are
    /// written sorted, and a stored pod's policy is compared with the one
    /// derived again.
    #[test]
    fn orders_like_path_components() {
        let paths = [
            "/",
            "/a",
            "/a/b",
            "/a-b",
            "/a.b",
            "/a/b/c",
            "/ab",
            "/a/a",
            "/b",
            "/A",
            "/a0",
            "/a/\u{e9}",
            "/a/z",
            "/dev",
            "/dev/shm",
            "/dev-x",
            "/\u{7f}",
            "/ ",
        ];
        for x in paths {
            for y in paths {
                assert_eq!(
                    p(x).cmp(&p(y)),
                    Path::new(x).cmp(Path::new(y)),
                    "{x:?} vs {y:?}"
                );
            }
        }
    }

    /// Every string of up to six characters over `/ . a -`, against the
    /// `Path::components` reading this type had before it was held as
    /// text: the same paths accepted, refused and normalised, and the same
    /// order between every pair accepted.
    #[test]
    fn agrees_with_path_components_exhaustively() {
        use std::path::{Component, PathBuf};
        let reference = |raw: &str| -> Option<PathBuf> {
            let path = Path::new(raw);
            if path.components().any(|c| c == Component::ParentDir) {
                return None;
            }
            Some(
                std::iter::once(Component::RootDir)
                    .chain(
                        path.components()
                            .filter(|c| matches!(c, Component::Normal(_))),
                    )
                    .collect(),
            )
        };
        let mut all = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..6 {
            frontier = frontier
                .iter()
                .flat_map(|s| ['/', '.', 'a', '-'].map(|c| format!("{s}{c}")))
                .collect();
            all.extend(frontier.iter().cloned());
        }
        let mut accepted = Vec::new();
        for raw in &all {
            let ours = AbsPath::rooted(raw);
            let theirs = reference(raw);
            assert_eq!(
                ours.as_ref().map(AbsPath::as_path),
                theirs.as_deref(),
                "rooted({raw:?})"
            );
            if raw.starts_with('/') {
                assert_eq!(raw.parse::<AbsPath>().ok(), ours, "parse({raw:?})");
            }
            accepted.extend(ours);
        }
        accepted.sort_by(|a, b| a.as_path().cmp(b.as_path()));
        accepted.dedup();
        for pair in accepted.windows(2) {
            assert_eq!(pair[0].cmp(&pair[1]), Ordering::Less, "{pair:?}");
        }
        for (i, a) in accepted.iter().enumerate().step_by(7) {
            for b in accepted.iter().skip(i % 5).step_by(3) {
                assert_eq!(a.cmp(b), a.as_path().cmp(b.as_path()), "{a} vs {b}");
            }
        }
    }
}
