//! What earlier lookups learnt: image configs by digest (content addressed,
//! so kept until evicted) and tags' digests (trusted for the tag TTL). Both
//! are keyed by the credential's fingerprint as well (see [`Fingerprint`]).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use landgate_engine::image::ImageConfig;

use crate::credentials::Fingerprint;

/// A digest's config, as seen through one credential. The repository is in
/// the key because registries grant access per repository: a digest readable
/// in one repository says nothing about another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DigestKey {
    pub credential: Fingerprint,
    /// `registry/repository`.
    pub repository: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TagKey {
    pub credential: Fingerprint,
    /// `registry/repository`.
    pub repository: String,
    pub tag: String,
}

pub(crate) struct Caches {
    configs: Lru<DigestKey, Arc<ImageConfig>>,
    tags: Lru<TagKey, (String, Instant)>,
    tag_ttl: Duration,
}

impl Caches {
    pub fn new(entries: usize, tag_ttl: Duration) -> Self {
        Self {
            configs: Lru::new(entries),
            tags: Lru::new(entries),
            tag_ttl,
        }
    }

    pub fn config(&mut self, key: &DigestKey) -> Option<Arc<ImageConfig>> {
        self.configs.get(key).cloned()
    }

    pub fn insert_config(&mut self, key: DigestKey, config: Arc<ImageConfig>) {
        self.configs.insert(key, config);
    }

    /// The tag's digest, if it was looked up less than the tag TTL ago.
    pub fn tag(&mut self, key: &TagKey, now: Instant) -> Option<String> {
        let (digest, fetched) = self.tags.get(key)?;
        if now.saturating_duration_since(*fetched) < self.tag_ttl {
            Some(digest.clone())
        } else {
            self.tags.remove(key);
            None
        }
    }

    pub fn insert_tag(&mut self, key: TagKey, digest: String, now: Instant) {
        self.tags.insert(key, (digest, now));
    }
}

/// A map that holds at most `capacity` entries and forgets the least
/// recently used first.
pub(crate) struct Lru<K, V> {
    capacity: usize,
    entries: HashMap<K, (V, u64)>,
    /// Last use -> key; the first entry is the one to evict.
    order: BTreeMap<u64, K>,
    clock: u64,
}

impl<K: Eq + Hash + Clone, V> Lru<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
        }
    }

    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.clock += 1;
        let clock = self.clock;
        let (value, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = clock;
        self.order.insert(clock, key.clone());
        Some(value)
    }

    pub fn insert(&mut self, key: K, value: V) {
        self.clock += 1;
        if let Some((_, used)) = self.entries.insert(key.clone(), (value, self.clock)) {
            self.order.remove(&used);
        }
        self.order.insert(self.clock, key);
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    pub fn remove(&mut self, key: &K) {
        if let Some((_, used)) = self.entries.remove(key) {
            self.order.remove(&used);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.get(&"a"), Some(&1));
        lru.insert("c", 3);
        assert_eq!(lru.get(&"b"), None, "b was used least recently");
        assert_eq!(lru.get(&"a"), Some(&1));
        assert_eq!(lru.get(&"c"), Some(&3));
        lru.insert("c", 4);
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.get(&"c"), Some(&4));
        lru.remove(&"a");
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn tags_expire_after_the_ttl() {
        let mut caches = Caches::new(4, Duration::from_secs(60));
        let key = TagKey {
            credential: Fingerprint::of(None),
            repository: "r.example/app".into(),
            tag: "1".into(),
        };
        let start = Instant::now();
        caches.insert_tag(key.clone(), "sha256:a".into(), start);
        assert_eq!(
            caches.tag(&key, start + Duration::from_secs(59)),
            Some("sha256:a".into())
        );
        assert_eq!(caches.tag(&key, start + Duration::from_secs(60)), None);
        assert_eq!(caches.tag(&key, start), None, "an expired tag is dropped");
    }
}
