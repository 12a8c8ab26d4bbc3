//! Why a resolver could not be built from its configuration.

use std::path::PathBuf;

use crate::credentials::CredentialsError;

/// A [`ResolverConfig`](crate::ResolverConfig) that cannot be used: each
/// names the file or setting and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolverError {
    #[error("cannot read the Docker config {}: {source}", path.display())]
    ReadDockerConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Docker config {}: {source}", path.display())]
    DockerConfig {
        path: PathBuf,
        #[source]
        source: CredentialsError,
    },
    #[error("cannot read the CA bundle {}: {source}", path.display())]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA bundle {} {problem}", path.display())]
    Ca { path: PathBuf, problem: String },
    #[error("the resolve timeout must be more than zero")]
    ZeroTimeout,
    #[error("the image cache must hold at least one entry (cache entries is 0)")]
    ZeroCacheEntries,
    #[error("insecure registry {0:?} is not host[:port] (no scheme, no path)")]
    InsecureRegistry(String),
    #[error("cannot build the registry HTTP client: {0}")]
    Client(String),
}
