//! The challenge book: every challenge the gateway passed to a client, to whom, and at
//! what difficulty, so a solution can be judged against what its fetcher was asked and
//! a token can be redeemed only once.

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::fmt;

use super::PowPolicy;
use crate::economics::accounts::SourceKeys;

mod snapshot;
pub use snapshot::{BookSnapshot, SavedChallenge};

/// Who a challenge was issued to, in compact form: a hash of the fetcher's client
/// address (the key every budget starts from). Two requests from one address have the
/// same `IssuedTo`; the address itself is not kept in the book.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IssuedTo([u8; 16]);

impl IssuedTo {
    /// The compact form of `source`'s keys.
    pub fn of(source: &SourceKeys) -> Self {
        let mut h = Sha256::new();
        h.update(b"pow-issued-to\0");
        h.update(source.ip.to_string().as_bytes());
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        IssuedTo(out)
    }
}

impl fmt::Debug for IssuedTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuedTo({})", hex::encode(&self.0[..4]))
    }
}

/// What the gateway asked of one challenge, and of whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeRecord {
    /// Platform's k.
    pub k: u32,
    /// The k' the fetcher was asked for (`k` when it owed nothing).
    pub k_prime: u32,
    /// Rounds per segment.
    pub g: u32,
    /// When it is forgotten, unix seconds.
    pub expires_at: u64,
    /// Who fetched it.
    pub issued_to: IssuedTo,
}

/// What [`ChallengeBook::redeem`] found for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    /// Issued through the gateway and not yet redeemed: it is burned now, so this is
    /// the one attempt it gets.
    Open(ChallengeRecord),
    /// Issued through the gateway and already redeemed (a solution was forwarded or
    /// refused): refused until it expires.
    Burned,
    /// Not in the book: never seen, expired, or evicted.
    Unknown,
}

struct Slot {
    record: ChallengeRecord,
    burned: bool,
}

struct BookInner {
    map: HashMap<[u8; 32], (u64, Slot)>,
    /// Insertion order (with a sequence number to skip entries replaced since).
    order: VecDeque<([u8; 32], u64)>,
    seq: u64,
    /// Capacity and lifetime: kept with the entries so a policy reload can change
    /// them in place without dropping the challenges already handed out.
    max: usize,
    ttl: u64,
}

/// Every challenge the gateway passed on, keyed by a hash of the challenge token (the
/// token itself is not kept). Bounded and expiring: the oldest entries are evicted
/// first when full. A redeemed challenge stays in the book, burned, until it expires,
/// so a refused solution cannot be sent again past the gateway.
///
/// An evicted or unknown challenge is forwarded only for a source that owes no extra
/// work (the platform checks its own); a source in debt is refused. Size
/// `max_challenges` above the challenge rate times the TTL.
pub struct ChallengeBook {
    inner: Mutex<BookInner>,
    seen: Mutex<SeenDigests>,
}

/// Most extra-checkpoint digests remembered for [`ChallengeBook::first_use`]: about
/// 24 MiB at most, far above what the create rate limits let through in a challenge
/// lifetime.
pub const MAX_SEEN_DIGESTS: usize = 1 << 20;

/// Digests of the extra checkpoints of verified solutions (the first 8 bytes of each,
/// with an expiry), oldest first.
#[derive(Default)]
struct SeenDigests {
    expiry: HashMap<u64, u64>,
    order: VecDeque<(u64, u64)>,
}

impl fmt::Debug for ChallengeBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("ChallengeBook")
            .field("len", &inner.map.len())
            .field("max", &inner.max)
            .field("ttl", &inner.ttl)
            .finish()
    }
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl ChallengeBook {
    /// A book holding at most `max` challenges for `ttl_secs` each.
    pub fn new(max: usize, ttl_secs: u64) -> Self {
        ChallengeBook {
            inner: Mutex::new(BookInner {
                map: HashMap::new(),
                order: VecDeque::new(),
                seq: 0,
                max: max.max(1),
                ttl: ttl_secs,
            }),
            seen: Mutex::new(SeenDigests::default()),
        }
    }

    /// Whether none of `digests` (the extra checkpoints of a verified solution) was
    /// part of a solution seen within a challenge lifetime; if none was, remembers them
    /// all. Spot checks verify a few segments, so a forger who makes up one checkpoint
    /// and hangs a chain computed once behind it passes whenever the checks miss that
    /// one segment; refusing any digest seen before makes the chain single-use, so
    /// each attempt costs its own chain and forging saves only the segments faked.
    pub fn first_use(&self, digests: &[[u8; 32]], now: u64) -> bool {
        let ttl = self.inner.lock().ttl;
        let mut seen = self.seen.lock();
        while let Some(&(d, exp)) = seen.order.front() {
            if exp > now && seen.order.len() <= MAX_SEEN_DIGESTS {
                break;
            }
            seen.order.pop_front();
            if seen.expiry.get(&d) == Some(&exp) {
                seen.expiry.remove(&d);
            }
        }
        let short =
            |d: &[u8; 32]| u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        if digests.iter().any(|d| seen.expiry.get(&short(d)).is_some_and(|&exp| exp > now)) {
            return false;
        }
        let exp = now.saturating_add(ttl.max(1));
        for d in digests {
            seen.expiry.insert(short(d), exp);
            seen.order.push_back((short(d), exp));
        }
        true
    }

    /// Applies a reloaded policy's `max_challenges` and `challenge_ttl_secs`. Entries
    /// already in the book keep their expiry; a smaller capacity evicts the oldest at
    /// the next [`ChallengeBook::remember`].
    pub fn reconfigure(&self, p: &PowPolicy) {
        let mut inner = self.inner.lock();
        inner.max = p.max_challenges.max(1);
        inner.ttl = p.challenge_ttl_secs;
    }

    /// (capacity, lifetime in seconds) in force.
    pub fn settings(&self) -> (usize, u64) {
        let inner = self.inner.lock();
        (inner.max, inner.ttl)
    }

    /// A book sized by the policy.
    pub fn from_policy(p: &PowPolicy) -> Self {
        Self::new(p.max_challenges, p.challenge_ttl_secs)
    }

    /// Remembers that `challenge_token` (platform difficulty `k`, `g`) was passed to
    /// `issued_to` asking for `k_prime`.
    pub fn remember(
        &self,
        challenge_token: &str,
        k: u32,
        k_prime: u32,
        g: u32,
        issued_to: IssuedTo,
        now: u64,
    ) {
        let key = token_key(challenge_token);
        let mut inner = self.inner.lock();
        inner.seq += 1;
        let seq = inner.seq;
        let expires_at = now.saturating_add(inner.ttl);
        let record = ChallengeRecord { k, k_prime, g, expires_at, issued_to };
        inner.map.insert(key, (seq, Slot { record, burned: false }));
        inner.order.push_back((key, seq));
        // Replaced entries leave stale order slots behind; drop them before they
        // outgrow the map, so the queue stays bounded by `2 * max` too.
        if inner.order.len() > 2 * inner.max {
            let BookInner { map, order, .. } = &mut *inner;
            order.retain(|(k, s)| map.get(k).is_some_and(|(live, _)| live == s));
        }
        // Evict expired entries, then the oldest while over capacity.
        while let Some(&(front, fseq)) = inner.order.front() {
            let live = inner
                .map
                .get(&front)
                .filter(|(s, _)| *s == fseq)
                .map(|(_, slot)| slot.record.expires_at);
            let evict = match live {
                None => true, // replaced
                Some(exp) => exp <= now || inner.map.len() > inner.max,
            };
            if !evict {
                break;
            }
            inner.order.pop_front();
            if live.is_some() {
                inner.map.remove(&front);
            }
        }
    }

    /// Redeems `challenge_token` at `now`: the first redemption of a live challenge
    /// gets its record and burns it, whatever the solution turns out to be, so a
    /// refused solution cannot be retried and verification work cannot be replayed.
    pub fn redeem(&self, challenge_token: &str, now: u64) -> Redeemed {
        let key = token_key(challenge_token);
        let mut inner = self.inner.lock();
        let Some((_, slot)) = inner.map.get_mut(&key) else {
            return Redeemed::Unknown;
        };
        if slot.record.expires_at <= now {
            inner.map.remove(&key);
            return Redeemed::Unknown;
        }
        if slot.burned {
            return Redeemed::Burned;
        }
        slot.burned = true;
        Redeemed::Open(slot.record)
    }

    /// Challenges remembered now (burned ones included).
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Whether none are remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
