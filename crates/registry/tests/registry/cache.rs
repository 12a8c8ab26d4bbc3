//! The caches (tag TTL, digests) and single flight, seen from outside:
//! answers and metrics.

use std::time::Duration;

use futures_util::future::join_all;
use landgate_registry::ResolverConfig;

use crate::support::{config, metric, metrics, registry, resolve, resolved, resolver, spec};

#[tokio::test]
async fn a_moved_tag_is_seen_after_the_ttl_only() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    let image = format!("{}/moving:1", registry.host());
    let old = registry
        .push_image("moving", "1", &spec(Some(&["/old"]), None))
        .await
        .unwrap();
    let long = resolver(ResolverConfig {
        tag_ttl: Duration::from_secs(3600),
        ..config(registry)
    });
    let short_ttl = Duration::from_millis(300);
    let short = resolver(ResolverConfig {
        tag_ttl: short_ttl,
        ..config(registry)
    });
    assert_eq!(resolved(resolve(&long, &image, &[]).await).digest, old);
    assert_eq!(resolved(resolve(&short, &image, &[]).await).digest, old);

    let new = registry
        .push_image("moving", "1", &spec(Some(&["/new"]), None))
        .await
        .unwrap();
    assert_ne!(old, new);
    tokio::time::sleep(short_ttl + Duration::from_millis(200)).await;

    let cached = resolved(resolve(&long, &image, &[]).await);
    assert_eq!(
        (cached.digest, cached.entrypoint),
        (old, vec!["/old".to_owned()])
    );
    let fresh = resolved(resolve(&short, &image, &[]).await);
    assert_eq!(
        (fresh.digest, fresh.entrypoint),
        (new, vec!["/new".to_owned()])
    );
}

#[tokio::test]
async fn concurrent_lookups_of_one_image_share_one_flight() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    let digest = registry
        .push_image("popular", "1", &spec(Some(&["/a"]), None))
        .await
        .unwrap();
    let resolver = resolver(config(registry));
    let image = vec![format!("{}/popular:1", registry.host())];
    let answers = join_all((0..8).map(|_| resolver.resolve(&image, &[]))).await;
    for answers in answers {
        assert_eq!(resolved(answers[&image[0]].clone()).digest, digest);
    }
    let text = metrics(&resolver);
    // One lookup went to the registry; the other seven joined it (or, had
    // it finished first, found its answer cached).
    assert_eq!(
        metric(&text, r#"landgate_image_cache_misses_total{cache="tag"}"#),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"landgate_image_cache_misses_total{cache="digest"}"#
        ),
        1.0
    );
    let shared = metric(&text, "landgate_image_shared_lookups_total");
    let hits = metric(&text, r#"landgate_image_cache_hits_total{cache="tag"}"#);
    assert_eq!(shared + hits, 7.0, "{text}");
    assert!(shared >= 1.0, "{text}");
    assert_eq!(
        metric(&text, "landgate_image_lookup_duration_seconds_count"),
        1.0
    );
}

#[tokio::test]
async fn cache_hits_and_errors_are_counted() {
    let setup = registry(None).await;
    let registry = &setup.registry;
    let digest = registry
        .push_image("counted", "1", &spec(Some(&["/a"]), None))
        .await
        .unwrap();
    let resolver = resolver(config(registry));
    let host = registry.host();
    let image = format!("{host}/counted:1");
    resolved(resolve(&resolver, &image, &[]).await);
    resolved(resolve(&resolver, &image, &[]).await);
    // Pinned to the same digest: the config cache answers, no tag involved.
    resolved(resolve(&resolver, &format!("{host}/counted@{digest}"), &[]).await);
    crate::support::failed(resolve(&resolver, &format!("{host}/counted:absent"), &[]).await);

    let text = metrics(&resolver);
    assert_eq!(
        metric(&text, r#"landgate_image_cache_hits_total{cache="tag"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"landgate_image_cache_hits_total{cache="digest"}"#),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"landgate_image_cache_misses_total{cache="tag"}"#),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"landgate_image_lookup_errors_total{cause="not_found"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"landgate_image_lookup_errors_total{cause="timeout"}"#
        ),
        0.0
    );
}
