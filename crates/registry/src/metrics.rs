//! The resolver's metrics, all `landgate_image_*`.

use std::time::Duration;

use landgate_engine::image::LookupFailure;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Which cache a hit or miss was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CacheKind {
    /// Image configs by digest.
    Digest,
    /// Tags' digests.
    Tag,
}

impl CacheKind {
    const ALL: [Self; 2] = [Self::Digest, Self::Tag];

    fn as_str(self) -> &'static str {
        match self {
            Self::Digest => "digest",
            Self::Tag => "tag",
        }
    }
}

const CAUSES: [LookupFailure; 5] = [
    LookupFailure::Timeout,
    LookupFailure::NotFound,
    LookupFailure::Unauthorized,
    LookupFailure::Unreachable,
    LookupFailure::Invalid,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

/// Handles to the metrics; cheap to clone (each is an `Arc` inside).
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    hits: Family<CacheLabels, Counter>,
    misses: Family<CacheLabels, Counter>,
    errors: Family<CauseLabels, Counter>,
    lookup_duration: Histogram,
    shared: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Self {
            hits: Family::default(),
            misses: Family::default(),
            errors: Family::default(),
            // A registry answers in milliseconds to seconds; past
            // --resolve-timeout only the cache benefits.
            lookup_duration: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            shared: Counter::default(),
        };
        // Export zeros so that rate() and alerts work before the first event.
        for kind in CacheKind::ALL {
            let labels = CacheLabels {
                cache: kind.as_str(),
            };
            let _ = metrics.hits.get_or_create(&labels);
            let _ = metrics.misses.get_or_create(&labels);
        }
        for cause in CAUSES {
            let _ = metrics.errors.get_or_create(&CauseLabels {
                cause: cause.as_str(),
            });
        }
        metrics
    }

    /// Registers under `image_*` in `registry`, which carries landgate's
    /// `landgate` prefix (the webhook's): `landgate_image_*` in the end.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("image");
        registry.register(
            "cache_hits",
            "Image lookups answered from the cache, by cache (digest: image configs, tag: tags' digests)",
            self.hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Image lookups the cache could not answer, by cache (digest: image configs, tag: tags' digests)",
            self.misses.clone(),
        );
        registry.register(
            "lookup_errors",
            "Images that could not be resolved, by cause (timeout, not_found, unauthorized, unreachable, invalid)",
            self.errors.clone(),
        );
        registry.register(
            "lookup_duration_seconds",
            "Time of one lookup that went to a registry: every round trip it needed, until its answer",
            self.lookup_duration.clone(),
        );
        registry.register(
            "shared_lookups",
            "Image lookups that joined one already in flight for the same reference and credential instead of asking the registry again",
            self.shared.clone(),
        );
    }

    pub fn hit(&self, kind: CacheKind) {
        self.hits
            .get_or_create(&CacheLabels {
                cache: kind.as_str(),
            })
            .inc();
    }

    pub fn miss(&self, kind: CacheKind) {
        self.misses
            .get_or_create(&CacheLabels {
                cache: kind.as_str(),
            })
            .inc();
    }

    pub fn error(&self, cause: LookupFailure) {
        self.errors
            .get_or_create(&CauseLabels {
                cause: cause.as_str(),
            })
            .inc();
    }

    pub fn registry_lookup(&self, elapsed: Duration) {
        self.lookup_duration.observe(elapsed.as_secs_f64());
    }

    pub fn shared(&self) {
        self.shared.inc();
    }
}
