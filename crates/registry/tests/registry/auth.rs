//! A registry behind basic auth: credentials from the resolver's Docker
//! config or the pod's pull secrets, and nothing leaking between them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use landgate_engine::image::LookupFailure;
use landgate_registry::{DockerConfig, ResolverConfig};

use crate::support::{
    config, docker_config_file, failed, registry, resolve, resolved, resolver, spec,
};

fn pull_secret(host: &str, user: &str, password: &str) -> Secret {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let json = format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#);
    Secret {
        metadata: ObjectMeta {
            name: Some("registry-pull".into()),
            namespace: Some("team".into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(json.into_bytes()),
        )])),
        ..Secret::default()
    }
}

#[tokio::test]
async fn the_docker_config_file_opens_a_private_registry() {
    let setup = registry(Some(("robot", "s3cret"))).await;
    let registry = &setup.registry;
    let digest = registry
        .push_image("private/app", "1", &spec(Some(&["/app"]), None))
        .await
        .unwrap();
    let image = format!("{}/private/app:1", registry.host());
    let dir = tempfile::tempdir().unwrap();

    let with = resolver(ResolverConfig {
        docker_config: Some(docker_config_file(
            dir.path(),
            &format!("https://{}", registry.host()),
            "robot",
            "s3cret",
        )),
        ..config(registry)
    });
    assert_eq!(resolved(resolve(&with, &image, &[]).await).digest, digest);

    let without = resolver(config(registry));
    let (cause, message) = failed(resolve(&without, &image, &[]).await);
    assert_eq!(cause, LookupFailure::Unauthorized, "{message}");
    assert!(
        message.contains(&image) && message.contains("no credentials were sent"),
        "{message}"
    );

    let wrong = resolver(ResolverConfig {
        docker_config: Some(docker_config_file(
            dir.path(),
            registry.host(),
            "robot",
            "guess",
        )),
        ..config(registry)
    });
    let (cause, message) = failed(resolve(&wrong, &image, &[]).await);
    assert_eq!(cause, LookupFailure::Unauthorized, "{message}");
    // Any tenant reads this message: the webhook's credential is named by
    // its origin, never by its username.
    assert!(
        message.contains("refused the credential from the webhook's --registry-config"),
        "{message}"
    );
    assert!(!message.contains("robot"), "{message}");
}

#[tokio::test]
async fn a_pull_secret_opens_it_for_that_pod_only() {
    let setup = registry(Some(("robot", "s3cret"))).await;
    let registry = &setup.registry;
    let digest = registry
        .push_image("private/app", "1", &spec(Some(&["/app"]), None))
        .await
        .unwrap();
    let image = format!("{}/private/app:1", registry.host());
    let secret =
        DockerConfig::from_secret(&pull_secret(registry.host(), "robot", "s3cret")).unwrap();
    let wrong = DockerConfig::from_secret(&pull_secret(registry.host(), "robot", "x")).unwrap();
    let resolver = resolver(config(registry));

    let config = resolved(resolve(&resolver, &image, std::slice::from_ref(&secret)).await);
    assert_eq!(config.digest, digest);

    // The same resolver, its cache now holding the image: a pod without the
    // secret, or with a wrong one, must not read it from there.
    let (cause, message) = failed(resolve(&resolver, &image, &[]).await);
    assert_eq!(cause, LookupFailure::Unauthorized, "{message}");
    let (cause, message) = failed(resolve(&resolver, &image, std::slice::from_ref(&wrong)).await);
    assert_eq!(cause, LookupFailure::Unauthorized, "{message}");
    assert!(
        message.contains("refused user \"robot\" from Secret team/registry-pull"),
        "{message}"
    );
    // Same for a pinned reference (the digest cache).
    let pinned = format!("{}/private/app@{digest}", registry.host());
    let (cause, message) = failed(resolve(&resolver, &pinned, &[]).await);
    assert_eq!(cause, LookupFailure::Unauthorized, "{message}");

    // The first pull secret matching the registry wins.
    let config = resolved(resolve(&resolver, &image, &[secret.clone(), wrong.clone()]).await);
    assert_eq!(config.digest, digest);
    let (cause, _) = failed(resolve(&resolver, &image, &[wrong, secret]).await);
    assert_eq!(cause, LookupFailure::Unauthorized);
}

#[tokio::test]
async fn pull_secrets_come_before_the_docker_config() {
    let setup = registry(Some(("robot", "s3cret"))).await;
    let registry = &setup.registry;
    registry
        .push_image("private/app", "1", &spec(Some(&["/app"]), None))
        .await
        .unwrap();
    let image = format!("{}/private/app:1", registry.host());
    let dir = tempfile::tempdir().unwrap();
    let resolver = resolver(ResolverConfig {
        docker_config: Some(docker_config_file(
            dir.path(),
            registry.host(),
            "robot",
            "s3cret",
        )),
        ..config(registry)
    });
    let wrong = DockerConfig::from_secret(&pull_secret(registry.host(), "robot", "x")).unwrap();
    let (cause, _) = failed(resolve(&resolver, &image, &[wrong]).await);
    assert_eq!(cause, LookupFailure::Unauthorized);
    resolved(resolve(&resolver, &image, &[]).await);
}
