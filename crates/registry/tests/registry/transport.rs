//! Registries that hang, refuse, present an unknown certificate or lie about
//! a digest; settings that cannot be used.

use std::time::{Duration, Instant};

use landgate_e2e::registry::black_hole;
use landgate_engine::image::LookupFailure;
use landgate_registry::{Resolver, ResolverConfig};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::support::{failed, metric, metrics, registry, resolve, spec};

#[tokio::test]
async fn a_registry_that_never_answers_costs_the_timeout_and_no_more() {
    let (_hole, host) = black_hole().unwrap();
    let timeout = Duration::from_secs(1);
    let resolver = Resolver::new(ResolverConfig {
        timeout,
        ..ResolverConfig::default()
    })
    .unwrap();
    let images = vec![
        format!("{host}/app:1"),
        format!("{host}/other@sha256:{}", "a".repeat(64)),
    ];
    let started = Instant::now();
    let answers = resolver.resolve(&images, &[]).await;
    let elapsed = started.elapsed();
    // A correctness bound (the call's budget), not a speed benchmark.
    assert!(elapsed < timeout + Duration::from_secs(1), "{elapsed:?}");
    for image in &images {
        let (cause, message) = failed(answers[image].clone());
        assert_eq!(cause, LookupFailure::Timeout, "{message}");
        assert!(
            message.contains(image) && message.contains(&host),
            "{message}"
        );
    }
    let text = metrics(&resolver);
    assert_eq!(
        metric(
            &text,
            r#"landgate_image_lookup_errors_total{cause="timeout"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let resolver = Resolver::new(ResolverConfig::default()).unwrap();
    let (cause, message) =
        failed(resolve(&resolver, &format!("127.0.0.1:{port}/app:1"), &[]).await);
    assert_eq!(cause, LookupFailure::Unreachable, "{message}");
}

#[tokio::test]
async fn an_unknown_certificate_authority_is_unreachable() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    registry
        .push_image("app", "1", &spec(Some(&["/a"]), None))
        .await
        .unwrap();
    // No extra_ca: the test CA is not trusted.
    let resolver = Resolver::new(ResolverConfig::default()).unwrap();
    let (cause, message) =
        failed(resolve(&resolver, &format!("{}/app:1", registry.host()), &[]).await);
    assert_eq!(cause, LookupFailure::Unreachable, "{message}");
    assert!(message.contains("certificate"), "{message}");
}

/// A plain-HTTP "registry" that answers every manifest request with the
/// same manifest, whatever digest was asked for, and claims it is that
/// digest.
async fn lying_registry(manifest: &'static [u8]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((connection, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut connection = BufReader::new(connection);
                let mut request_line = String::new();
                connection.read_line(&mut request_line).await.unwrap();
                loop {
                    let mut header = String::new();
                    connection.read_line(&mut header).await.unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                }
                let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
                let (body, extra): (&[u8], String) = match path.split_once("/manifests/") {
                    Some((_, reference)) => (
                        manifest,
                        format!(
                            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                             Docker-Content-Digest: {reference}\r\n"
                        ),
                    ),
                    None => (b"{}", "Content-Type: application/json\r\n".to_owned()),
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let connection = connection.get_mut();
                connection.write_all(head.as_bytes()).await.unwrap();
                connection.write_all(body).await.unwrap();
                connection.shutdown().await.unwrap();
            });
        }
    });
    host
}

#[tokio::test]
async fn a_registry_lying_about_a_digest_is_invalid() {
    const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
    let host = lying_registry(MANIFEST).await;
    let resolver = Resolver::new(ResolverConfig {
        insecure_registries: vec![host.clone()],
        ..ResolverConfig::default()
    })
    .unwrap();
    let claimed: String = Sha256::digest(b"another manifest")
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let (cause, message) =
        failed(resolve(&resolver, &format!("{host}/app@sha256:{claimed}"), &[]).await);
    assert_eq!(cause, LookupFailure::Invalid, "{message}");
    assert!(message.contains(&claimed), "{message}");
}

#[test]
fn unusable_settings_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let error = Resolver::new(ResolverConfig {
        docker_config: Some(missing.clone()),
        ..ResolverConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains("cannot read the Docker config")
            && error.contains(&*missing.to_string_lossy()),
        "{error}"
    );

    let bad_auth = dir.path().join("config.json");
    std::fs::write(&bad_auth, r#"{"auths": {"r.example": {"auth": "%%%"}}}"#).unwrap();
    let error = Resolver::new(ResolverConfig {
        docker_config: Some(bad_auth.clone()),
        ..ResolverConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains(&*bad_auth.to_string_lossy())
            && error.contains("\"r.example\"")
            && error.contains("not valid base64"),
        "{error}"
    );

    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let error = Resolver::new(ResolverConfig {
        extra_ca: Some(not_pem.clone()),
        ..ResolverConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains(&*not_pem.to_string_lossy()) && error.contains("no CERTIFICATE"),
        "{error}"
    );

    let error = Resolver::new(ResolverConfig {
        insecure_registries: vec!["http://r.example".into()],
        ..ResolverConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("host[:port]"), "{error}");
}
