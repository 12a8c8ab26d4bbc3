//! Registries that attack the webhook: bodies without end, redirects into
//! the cluster network, error pages meant to be echoed to a tenant, indexes
//! that run something other than what they seem to.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use landgate_engine::image::LookupFailure;
use landgate_registry::{Resolver, ResolverConfig};
use sha2::{Digest as _, Sha256};

use crate::fake::{self, Answer, Fake};
use crate::support::{failed, resolve, resolved};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SECRET: &str = "INTERNAL-SECRET-8f3a";

fn resolver_for(fake: &Fake) -> Resolver {
    Resolver::new(ResolverConfig {
        insecure_registries: vec![fake.host.clone()],
        timeout: Duration::from_secs(10),
        ..ResolverConfig::default()
    })
    .unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Looks `image` up on `fake`; the failure, in well under the budget.
async fn fails_fast(fake: &Fake, image: &str) -> (LookupFailure, String) {
    let resolver = resolver_for(fake);
    let started = Instant::now();
    let answer = resolve(&resolver, &format!("{}/{image}", fake.host), &[]).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    failed(answer)
}

/// The webhook's memory is not the registry's to decide: an endless
/// manifest (a 10 GiB webhook in 30 s, before the cap) is cut off past
/// 4 MiB, and one announced larger is not read at all.
#[tokio::test]
async fn an_endless_manifest_is_cut_off_at_4_mib() {
    let fake = fake::start(|_| Answer::endless(200, OCI_MANIFEST)).await;
    let (cause, message) = fails_fast(&fake, "app:1").await;
    assert_eq!(cause, LookupFailure::Invalid, "{message}");
    assert!(
        message.contains("the manifest is larger than 4 MiB"),
        "{message}"
    );
    // What the socket buffers hold beyond the cap, not gigabytes.
    let sent = fake.sent.load(Ordering::SeqCst);
    assert!(sent < 64 << 20, "{sent} bytes sent");

    let fake = fake::start(|_| {
        Answer::endless(200, OCI_MANIFEST).header("Content-Length", (1u64 << 30).to_string())
    })
    .await;
    let (cause, message) = fails_fast(&fake, "app:1").await;
    assert_eq!(cause, LookupFailure::Invalid, "{message}");
    assert!(
        message.contains("the manifest is larger than 4 MiB"),
        "{message}"
    );
}

#[tokio::test]
async fn endless_error_and_token_bodies_are_cut_off() {
    let fake = fake::start(|_| Answer::endless(404, "text/html")).await;
    let (cause, message) = fails_fast(&fake, "app:1").await;
    assert_eq!(cause, LookupFailure::NotFound, "{message}");
    assert!(message.ends_with("HTTP 404"), "{message}");
    assert!(fake.sent.load(Ordering::SeqCst) < 64 << 20);

    let fake = fake::start(|request| {
        if request.path.starts_with("/token") {
            Answer::endless(200, "application/json")
        } else {
            Answer::new(401, "application/json", "{}").header(
                "WWW-Authenticate",
                format!(
                    r#"Bearer realm="http://{}/token",service="fake""#,
                    request.host
                ),
            )
        }
    })
    .await;
    let (cause, message) = fails_fast(&fake, "app:1").await;
    assert_eq!(cause, LookupFailure::Invalid, "{message}");
    assert!(
        message.contains("the registry's token service: the token response is larger than 256 KiB"),
        "{message}"
    );
    assert!(fake.sent.load(Ordering::SeqCst) < 64 << 20);
}

/// A registry's error body never reaches the tenant: status and registry
/// error codes do.
#[tokio::test]
async fn error_bodies_are_not_echoed() {
    let envelope = format!(
        r#"{{"errors":[{{"code":"MANIFEST_UNKNOWN","message":"{SECRET}","detail":"{SECRET}"}}]}}"#
    );
    let fake = fake::start(move |_| Answer::new(404, "application/json", envelope.clone())).await;
    let (cause, message) = fails_fast(&fake, "app:1").await;
    assert_eq!(cause, LookupFailure::NotFound, "{message}");
    assert!(
        message.ends_with("HTTP 404 (MANIFEST_UNKNOWN)"),
        "{message}"
    );
    assert!(!message.contains(SECRET), "{message}");

    let page = format!("<html><body>admin console: {SECRET}</body></html>");
    let fake = fake::start(move |_| Answer::new(502, "text/html", page.clone())).await;
    let (cause, message) = fails_fast(&fake, "app:1").await;
    assert_eq!(cause, LookupFailure::Unreachable, "{message}");
    assert!(message.ends_with("HTTP 502"), "{message}");
    assert!(!message.contains(SECRET), "{message}");

    let fake = fake::start(|request| {
        if request.path.starts_with("/token") {
            Answer::new(403, "text/plain", SECRET)
        } else {
            Answer::new(401, "application/json", "{}").header(
                "WWW-Authenticate",
                format!(r#"Bearer realm="http://{}/token""#, request.host),
            )
        }
    })
    .await;
    let (cause, message) = fails_fast(&fake, "app:1").await;
    assert_eq!(cause, LookupFailure::Unauthorized, "{message}");
    assert!(
        message.contains("the registry's token service refused (HTTP 403)"),
        "{message}"
    );
    assert!(!message.contains(SECRET), "{message}");
}

/// A registry redirecting into the cluster network (plain HTTP) is not
/// followed: the service there is never asked, so nothing of it can come
/// back in a message.
#[tokio::test]
async fn a_redirect_to_plain_http_is_not_followed() {
    let internal = fake::start(|_| Answer::new(500, "text/plain", SECRET)).await;
    let target = format!("http://{}/admin", internal.host);
    let fake =
        fake::start(move |_| Answer::new(307, "text/plain", "").header("Location", target.clone()))
            .await;
    let (cause, message) = fails_fast(&fake, "app:1").await;
    assert_eq!(cause, LookupFailure::Unreachable, "{message}");
    assert!(
        message.contains("only https to https redirects are followed"),
        "{message}"
    );
    assert!(!message.contains(SECRET), "{message}");
    assert_eq!(internal.requests.load(Ordering::SeqCst), 0);
}

/// containerd runs a platform-less index entry on any node and walks nested
/// indexes: what such an image runs cannot be told, so it is Invalid.
#[tokio::test]
async fn indexes_with_platform_less_entries_or_nested_indexes_are_invalid() {
    let digest = format!("sha256:{}", "a".repeat(64));
    for (entry, expected) in [
        (
            format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":2}}"#),
            format!("the index entry {digest} has no platform"),
        ),
        (
            format!(
                r#"{{"mediaType":"{OCI_INDEX}","digest":"{digest}","size":2,
                    "platform":{{"os":"linux","architecture":"amd64"}}}}"#
            ),
            format!("the index nests another index ({digest})"),
        ),
    ] {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
                {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{}","size":2,
                  "platform":{{"os":"linux","architecture":"arm64"}}}},{entry}]}}"#,
            "b".repeat(64)
        );
        let fake = fake::start(move |request| {
            if request.path.ends_with("/manifests/1") {
                Answer::new(200, OCI_INDEX, index.clone())
            } else {
                Answer::new(404, "application/json", "{}")
            }
        })
        .await;
        let (cause, message) = fails_fast(&fake, "app:1").await;
        assert_eq!(cause, LookupFailure::Invalid, "{message}");
        assert!(message.contains(&expected), "{message}");
    }
}

/// The token flow (challenge, token service, bearer), which the real test
/// registry (basic auth) does not exercise.
#[tokio::test]
async fn a_bearer_token_is_negotiated_and_sent() {
    const CONFIG: &[u8] = br#"{"os":"linux","config":{"Entrypoint":["/app"]}}"#;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{
            "mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},
            "layers":[]}}"#,
        sha256(CONFIG),
        CONFIG.len()
    );
    let fake = fake::start(move |request| {
        if request.path.starts_with("/token?") {
            assert!(
                request.path.contains("scope=repository%3Aapp%3Apull"),
                "{}",
                request.path
            );
            return Answer::new(200, "application/json", r#"{"token":"t0k3n"}"#);
        }
        if request.authorization.as_deref() != Some("Bearer t0k3n") {
            return Answer::new(401, "application/json", "{}").header(
                "WWW-Authenticate",
                format!(
                    r#"Bearer realm="http://{}/token",service="fake""#,
                    request.host
                ),
            );
        }
        if request.path.contains("/manifests/") {
            Answer::new(200, OCI_MANIFEST, manifest.clone())
        } else {
            Answer::new(200, "application/octet-stream", CONFIG)
        }
    })
    .await;
    let resolver = resolver_for(&fake);
    let config = resolved(resolve(&resolver, &format!("{}/app:1", fake.host), &[]).await);
    assert_eq!(config.entrypoint, ["/app"]);
    // The manifest (401, token, again) and the config with the token kept.
    assert_eq!(fake.requests.load(Ordering::SeqCst), 4);
}
