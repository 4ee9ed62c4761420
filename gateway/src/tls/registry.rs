//! Which connection has which JA4, from the pre-TLS hook to the request phase.
//!
//! Pingora 0.9.1 gives the pre-TLS hook only the raw `L4Stream`, and gives
//! `ProxyHttp` only the session's `Digest`; the one object both can see is the
//! connection's `Arc<SocketDigest>` (created at accept, shared by the TLS stream and
//! every HTTP session on it). So the fingerprint is stored under that Arc's address.
//! The entry holds the Arc weakly: it never keeps a closed connection's digest alive,
//! and a lookup checks that the live Arc is the same allocation, so an address reused
//! by a later connection never inherits an old fingerprint. Dead entries are swept on
//! insert, amortised, so the map stays proportional to open connections.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use pingora::protocols::SocketDigest;

/// Shards spread connections accepted on different threads over different locks.
const SHARDS: usize = 16;
/// A shard is swept once it holds this many entries (then twice its live size).
const MIN_SWEEP: usize = 64;

struct Entry {
    digest: Weak<SocketDigest>,
    ja4: Arc<str>,
}

struct Shard {
    map: HashMap<usize, Entry>,
    sweep_at: usize,
}

/// JA4 fingerprints of open TLS connections.
pub struct Fingerprints {
    shards: [Mutex<Shard>; SHARDS],
}

impl Default for Fingerprints {
    fn default() -> Self {
        Fingerprints {
            shards: std::array::from_fn(|_| {
                Mutex::new(Shard { map: HashMap::new(), sweep_at: MIN_SWEEP })
            }),
        }
    }
}

fn key(digest: &Arc<SocketDigest>) -> usize {
    Arc::as_ptr(digest) as usize
}

impl Fingerprints {
    fn shard(&self, key: usize) -> &Mutex<Shard> {
        // Heap addresses share their low bits (alignment): shard on the bits above.
        &self.shards[(key >> 6) % SHARDS]
    }

    /// Records the fingerprint of the connection owning `digest`.
    pub fn insert(&self, digest: &Arc<SocketDigest>, ja4: Arc<str>) {
        let key = key(digest);
        let mut shard = self.shard(key).lock();
        if shard.map.len() >= shard.sweep_at {
            shard.map.retain(|_, e| e.digest.strong_count() > 0);
            shard.sweep_at = (shard.map.len() * 2).max(MIN_SWEEP);
        }
        shard.map.insert(key, Entry { digest: Arc::downgrade(digest), ja4 });
    }

    /// The fingerprint of the connection owning `digest`, if the hook computed one.
    pub fn get(&self, digest: &Arc<SocketDigest>) -> Option<Arc<str>> {
        let key = key(digest);
        let shard = self.shard(key).lock();
        let entry = shard.map.get(&key)?;
        // Same address but another allocation: a connection that reused the memory.
        std::ptr::eq(entry.digest.as_ptr(), Arc::as_ptr(digest)).then(|| entry.ja4.clone())
    }

    /// Entries held, live or not yet swept (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Arc<SocketDigest> {
        // The fd is never used: only `peer_addr()`/`local_addr()` would touch it.
        Arc::new(SocketDigest::from_raw_fd(-1))
    }

    #[test]
    fn lookups_find_only_the_same_connection() {
        let map = Fingerprints::default();
        let (a, b) = (digest(), digest());
        map.insert(&a, "t13d1516h2_8daaf6152771_e5627efa2ab1".into());
        assert_eq!(map.get(&a).as_deref(), Some("t13d1516h2_8daaf6152771_e5627efa2ab1"));
        assert_eq!(map.get(&b), None);
    }

    #[test]
    fn closed_connections_are_swept_and_never_matched() {
        let map = Fingerprints::default();
        let keep = digest();
        map.insert(&keep, "kept".into());
        for _ in 0..10_000 {
            let gone = digest();
            map.insert(&gone, "gone".into());
        }
        // Ten thousand closed connections, at most a few sweeps' worth still held.
        assert!(map.len() <= SHARDS * MIN_SWEEP * 2 + 1, "{} entries", map.len());
        assert_eq!(map.get(&keep).as_deref(), Some("kept"));
        // A new connection at a reused address does not inherit a dead entry.
        let fresh = digest();
        assert!(map.get(&fresh).is_none());
    }
}
