//! The resolver's settings, and the platform it resolves images for.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// What [`Resolver::new`](crate::Resolver::new) needs; every field has a
/// default (`ResolverConfig::default()`).
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// The platform whose config is used when a multi-platform image's
    /// platforms disagree.
    pub platform: Platform,
    /// How long a tag's digest is trusted before the registry is asked
    /// again: a moved tag is seen at most this late.
    pub tag_ttl: Duration,
    /// How many image configs (by digest) and tags are kept, each.
    pub cache_entries: usize,
    /// The budget of one [`Resolver::resolve`](crate::Resolver::resolve)
    /// call, all its images together.
    pub timeout: Duration,
    /// A Docker `config.json` (`auths`) whose credentials are used when no
    /// pull secret of the pod matches the registry. Read once, at start.
    pub docker_config: Option<PathBuf>,
    /// A PEM bundle of CAs trusted in addition to the system's.
    pub extra_ca: Option<PathBuf>,
    /// Registries (`host[:port]`, as images name them) spoken to over plain
    /// HTTP; every other registry is HTTPS.
    pub insecure_registries: Vec<String>,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            platform: Platform::linux("amd64", None),
            tag_ttl: Duration::from_secs(5 * 60),
            cache_entries: 1024,
            timeout: Duration::from_secs(2),
            docker_config: None,
            extra_ca: None,
            insecure_registries: Vec::new(),
        }
    }
}

/// A Linux platform, `linux/<architecture>[/<variant>]`, normalised the way
/// containerd does (`aarch64` is `arm64`, `arm64` is `arm64/v8`, `arm` is
/// `arm/v7`), so that an index entry and `--platform` compare equal however
/// each was spelled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    /// `linux/<architecture>[/<variant>]`, normalised.
    pub fn linux(architecture: &str, variant: Option<&str>) -> Self {
        let architecture = architecture.to_ascii_lowercase();
        let variant = variant
            .filter(|variant| !variant.is_empty())
            .map(str::to_ascii_lowercase);
        let (architecture, variant) = match (architecture.as_str(), variant.as_deref()) {
            ("x86_64" | "x86-64" | "amd64", None | Some("v1")) => ("amd64", None),
            ("x86_64" | "x86-64", variant) => ("amd64", variant),
            ("aarch64" | "arm64", None | Some("8" | "v8")) => ("arm64", Some("v8")),
            ("aarch64", variant) => ("arm64", variant),
            ("armhf", _) => ("arm", Some("v7")),
            ("armel", _) => ("arm", Some("v6")),
            ("arm", None | Some("7")) => ("arm", Some("v7")),
            ("arm", Some("6")) => ("arm", Some("v6")),
            ("arm", Some("5")) => ("arm", Some("v5")),
            ("i386" | "i686", _) => ("386", None),
            (architecture, variant) => (architecture, variant),
        };
        Self {
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "linux/{}", self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Why a `--platform` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    #[error(
        "platform {0:?} is not os/architecture[/variant] (for example linux/amd64 or linux/arm64/v8)"
    )]
    Shape(String),
    #[error(
        "platform {0:?} is not a Linux platform: landgate wraps Linux containers only (use linux/<architecture>)"
    )]
    NotLinux(String),
    #[error(
        "platform {0:?} has an architecture or variant with characters other than a-z, 0-9, '_' and '-'"
    )]
    Characters(String),
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.trim().split('/').collect();
        let (os, architecture, variant) = match parts.as_slice() {
            [os, architecture] => (*os, *architecture, None),
            [os, architecture, variant] => (*os, *architecture, Some(*variant)),
            _ => return Err(PlatformError::Shape(text.to_owned())),
        };
        if architecture.is_empty() || variant.is_some_and(str::is_empty) {
            return Err(PlatformError::Shape(text.to_owned()));
        }
        if !os.eq_ignore_ascii_case("linux") {
            return Err(PlatformError::NotLinux(text.to_owned()));
        }
        let allowed = |part: &str| {
            part.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !allowed(architecture) || !variant.is_none_or(allowed) {
            return Err(PlatformError::Characters(text.to_owned()));
        }
        Ok(Self::linux(architecture, variant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let parse = |text: &str| text.parse::<Platform>().unwrap().to_string();
        assert_eq!(parse("linux/amd64"), "linux/amd64");
        assert_eq!(parse("linux/x86_64"), "linux/amd64");
        assert_eq!(parse("Linux/AMD64"), "linux/amd64");
        assert_eq!(parse("linux/arm64"), "linux/arm64/v8");
        assert_eq!(parse("linux/arm64/v8"), "linux/arm64/v8");
        assert_eq!(parse("linux/aarch64"), "linux/arm64/v8");
        assert_eq!(parse("linux/arm"), "linux/arm/v7");
        assert_eq!(parse("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(parse("linux/s390x"), "linux/s390x");
        assert_eq!(
            "linux/arm64".parse::<Platform>().unwrap(),
            Platform::linux("arm64", Some("v8"))
        );
    }

    #[test]
    fn refuses_what_is_not_a_linux_platform() {
        for (text, error) in [
            ("amd64", PlatformError::Shape("amd64".into())),
            ("linux/", PlatformError::Shape("linux/".into())),
            ("linux/arm64/", PlatformError::Shape("linux/arm64/".into())),
            ("linux/a/b/c", PlatformError::Shape("linux/a/b/c".into())),
            (
                "windows/amd64",
                PlatformError::NotLinux("windows/amd64".into()),
            ),
            (
                "linux/am d64",
                PlatformError::Characters("linux/am d64".into()),
            ),
        ] {
            assert_eq!(text.parse::<Platform>(), Err(error), "{text}");
        }
        let message = "windows/amd64".parse::<Platform>().unwrap_err().to_string();
        assert!(message.contains("not a Linux platform"), "{message}");
    }
}
