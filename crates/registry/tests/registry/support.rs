//! What the tests share: a registry per test, a resolver that trusts it, and
//! reading the metrics back.

use std::path::Path;
use std::time::Duration;

use landgate_e2e::registry::{ImageSpec, TestRegistry};
use landgate_engine::image::{ImageConfig, ImageLookup, LookupFailure};
use landgate_registry::{DockerConfig, Resolver, ResolverConfig};

pub struct Setup {
    pub registry: TestRegistry,
    // Dropped after the registry (fields drop in order): its storage.
    _dir: tempfile::TempDir,
}

pub async fn registry(auth: Option<(&str, &str)>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(dir.path(), auth).await.unwrap();
    Setup {
        registry,
        _dir: dir,
    }
}

/// Settings for a resolver that trusts `registry`'s CA. The budget is
/// generous: these tests are about answers, not speed.
pub fn config(registry: &TestRegistry) -> ResolverConfig {
    ResolverConfig {
        extra_ca: Some(registry.ca_path()),
        timeout: Duration::from_secs(20),
        ..ResolverConfig::default()
    }
}

pub fn resolver(config: ResolverConfig) -> Resolver {
    Resolver::new(config).unwrap()
}

pub async fn resolve(resolver: &Resolver, image: &str, secrets: &[DockerConfig]) -> ImageLookup {
    let images = resolver.resolve(&[image.to_owned()], secrets).await;
    assert_eq!(images.len(), 1, "{images:?}");
    images[image].clone()
}

pub fn resolved(lookup: ImageLookup) -> ImageConfig {
    match lookup {
        ImageLookup::Resolved(config) => (*config).clone(),
        ImageLookup::Failed { cause, message } => panic!("failed ({cause}): {message}"),
    }
}

/// The cause and message of a failed lookup.
pub fn failed(lookup: ImageLookup) -> (LookupFailure, String) {
    match lookup {
        ImageLookup::Failed { cause, message } => (cause, message),
        ImageLookup::Resolved(config) => panic!("resolved: {config:?}"),
    }
}

pub fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

pub fn spec(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageSpec {
    ImageSpec {
        entrypoint: entrypoint.map(args),
        cmd: cmd.map(args),
        ..ImageSpec::default()
    }
}

/// The metrics in the text exposition format, in a registry prefixed like
/// the webhook's.
pub fn metrics(resolver: &Resolver) -> String {
    let mut registry = prometheus_client::registry::Registry::with_prefix("landgate");
    resolver.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

/// The value of one series (`name{labels}` exactly as encoded).
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// A Docker config.json with `user:password` for `host`, written to `dir`.
pub fn docker_config_file(
    dir: &Path,
    host: &str,
    user: &str,
    password: &str,
) -> std::path::PathBuf {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    path
}
