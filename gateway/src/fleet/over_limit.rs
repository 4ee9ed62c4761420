//! The over-limit cache: bucket keys Redis said are over their limit, until their
//! retry time, so that a client hammering a refused limit is refused locally and
//! Redis sees one call per refusal period, not one per request (as envoy's ratelimit
//! service does with its local cache of over-limit keys).
//!
//! The cache only ever refuses, and only for as long as Redis itself said the request
//! would not fit (`wait` of the verdict), measured on this gateway's monotonic clock:
//! it cannot admit anything Redis would refuse, so it adds no overshoot. It is bounded;
//! when full, expired entries are dropped, and if none has expired the new key is
//! simply not cached (Redis is then asked, as without the cache).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Keys cached at most (about 100 bytes each).
pub const MAX_KEYS: usize = 100_000;

/// Bucket keys known to refuse until an instant.
#[derive(Default)]
pub struct OverLimit {
    map: Mutex<HashMap<String, Instant>>,
}

impl OverLimit {
    /// How long `key` still refuses, if it is cached and its retry time is ahead.
    pub fn refusing(&self, key: &str, now: Instant) -> Option<Duration> {
        let map = self.map.lock();
        let until = *map.get(key)?;
        (until > now).then(|| until - now)
    }

    /// Remembers that `key` refuses for `wait` from `now`.
    pub fn remember(&self, key: &str, now: Instant, wait: Duration) {
        let until = now + wait;
        let mut map = self.map.lock();
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, u| *u > now);
            if map.len() >= MAX_KEYS {
                return;
            }
        }
        map.insert(key.to_string(), until);
    }

    /// Keys cached now (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_refuses_until_its_retry_time_only() {
        let cache = OverLimit::default();
        let t0 = Instant::now();
        assert_eq!(cache.refusing("k", t0), None);
        cache.remember("k", t0, Duration::from_secs(10));
        assert_eq!(cache.refusing("k", t0 + Duration::from_secs(4)), Some(Duration::from_secs(6)));
        assert_eq!(cache.refusing("k", t0 + Duration::from_secs(10)), None);
        assert_eq!(cache.refusing("other", t0), None);
    }

    #[test]
    fn a_full_cache_drops_expired_keys_first() {
        let cache = OverLimit::default();
        let t0 = Instant::now();
        for i in 0..MAX_KEYS {
            cache.remember(&i.to_string(), t0, Duration::from_secs(1));
        }
        let later = t0 + Duration::from_secs(2);
        cache.remember("new", later, Duration::from_secs(5));
        assert_eq!(cache.len(), 1);
        assert!(cache.refusing("new", later).is_some());
    }
}
