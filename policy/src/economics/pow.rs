//! Adaptive proof-of-work: sources with unclaimed-cleanup debt solve longer chains.
//!
//! The platform's challenge is `{challengeToken, seed, k, g}`; the solution is the chain
//! `cp[0] = sha256(seed)`, `cp[j+1] = sha256^g(cp[j])`, sent as the `k+1` checkpoints
//! `cp[0..=k]` in standard base64. The gateway cannot change what the platform checks,
//! but it can ask for *more*: it answers the challenge with `k' > k` (same seed and `g`),
//! remembers `k'` for that challenge token ([`ChallengeBook`]), and when the solution
//! comes back it spot-checks the extra segments `cp[k..k']` and forwards only the first
//! `k+1` checkpoints, which is exactly what the platform asked for.
//!
//! Verification is cheap by construction: each segment `cp[j] -> cp[j+1]` costs `g`
//! hashes to check, so checking `s` random extra segments costs at most `s * g` hashes
//! however long the chain, while a client that skips a fraction `f` of the extra
//! segments is caught with probability about `1 - (1 - f)^s`.
//!
//! The first `k+1` checkpoints (and `cp[0] = sha256(seed)`) are the platform's to
//! verify, so they are not re-checked here; the extra segments start at `cp[k]`, which
//! the platform binds to this seed, so they cannot be precomputed for another challenge.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::fmt;

/// wrangler refuses a challenge with `k * g` above this (about 70 s of hashing).
pub const WRANGLER_MAX_WORK: u64 = 64_000_000;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a challenge could not be rewritten or a solution was rejected. The `Display`
/// text is user-facing: wrangler prints it after "Failed to create a temporary preview
/// account".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// The challenge or solution JSON is not what the platform sends.
    #[error("proof-of-work: {0}")]
    Malformed(String),
    /// The requested difficulty is impossible (below the platform's, or above wrangler's cap).
    #[error("proof-of-work: difficulty k={k_prime} with g={g} is not allowed (platform k={k}, k*g at most {max})")]
    BadDifficulty {
        /// Platform's k.
        k: u32,
        /// Requested k'.
        k_prime: u32,
        /// Rounds per segment.
        g: u32,
        /// Work cap.
        max: u64,
    },
    /// The solution has the wrong number of checkpoints.
    #[error("proof-of-work rejected: expected {expected} checkpoints, got {got}. Request a new challenge and solve it again (wrangler does this on the next deploy).")]
    WrongCount {
        /// k' + 1.
        expected: usize,
        /// Sent.
        got: usize,
    },
    /// A checkpoint is not standard base64 of 32 bytes.
    #[error("proof-of-work rejected: checkpoint {index} is not a base64 SHA-256 digest. Request a new challenge and solve it again.")]
    BadCheckpoint {
        /// Its index.
        index: usize,
    },
    /// A spot-checked segment does not follow from its start.
    #[error("proof-of-work rejected: checkpoint {} does not follow from checkpoint {segment}. Request a new challenge and solve it again.", segment + 1)]
    Mismatch {
        /// The segment's start index.
        segment: usize,
    },
}

// ---------------------------------------------------------------------------------------
// [pow]
// ---------------------------------------------------------------------------------------

/// Compiled adaptive proof-of-work policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PowPolicy {
    /// Extra checkpoints per unit of debt (0 turns adaptive difficulty off).
    pub extra_checkpoints_per_unit: f64,
    /// `k'` is at most `k * max_factor`.
    pub max_factor: u32,
    /// `k' * g` is at most this (never above [`WRANGLER_MAX_WORK`]).
    pub max_work: u64,
    /// Extra segments verified per solution.
    pub spot_checks: u32,
    /// Seconds a rewritten challenge is remembered (the platform's own challenge
    /// lifetime is a few minutes; longer only costs memory).
    pub challenge_ttl_secs: u64,
    /// Bound on remembered challenges, so a flood of challenge requests cannot grow
    /// memory without limit.
    pub max_challenges: usize,
}

impl Default for PowPolicy {
    /// +1 checkpoint per 10 units (an address at the default `harder_pow` budget of 60
    /// solves k+6), at most 8x the platform's work, 4 spot checks (a client skipping
    /// half the extra work is caught 15 times in 16).
    fn default() -> Self {
        PowPolicy {
            extra_checkpoints_per_unit: 0.1,
            max_factor: 8,
            max_work: WRANGLER_MAX_WORK,
            spot_checks: 4,
            challenge_ttl_secs: 600,
            max_challenges: 100_000,
        }
    }
}

impl PowPolicy {
    /// The `k'` to ask of a source with `debt_units` of unclaimed-cleanup debt, for a
    /// platform challenge `(k, g)`: `k + ceil(debt * extra_checkpoints_per_unit)`,
    /// capped at `k * max_factor` and at `max_work / g`, never below `k`.
    pub fn difficulty_for(&self, debt_units: u64, k: u32, g: u32) -> u32 {
        if g == 0 || k == 0 {
            return k;
        }
        // f64 -> u64 `as` saturates, so a huge debt cannot wrap.
        let extra = (debt_units as f64 * self.extra_checkpoints_per_unit).ceil() as u64;
        let wanted = u64::from(k).saturating_add(extra);
        let by_factor = u64::from(k).saturating_mul(u64::from(self.max_factor.max(1)));
        let by_work = self.max_work.min(WRANGLER_MAX_WORK) / u64::from(g);
        let k_prime = wanted.min(by_factor).min(by_work).max(u64::from(k));
        u32::try_from(k_prime).unwrap_or(k)
    }
}

/// Free-function form of [`PowPolicy::difficulty_for`].
pub fn difficulty_for(debt_units: u64, k: u32, g: u32, policy: &PowPolicy) -> u32 {
    policy.difficulty_for(debt_units, k, g)
}

// ---------------------------------------------------------------------------------------
// Challenges
// ---------------------------------------------------------------------------------------

/// A platform challenge (the `result` of `POST .../provisioning/previews/challenge`).
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Opaque token the solution refers to.
    pub challenge_token: String,
    /// Seed bytes (decoded from base64url).
    pub seed: Vec<u8>,
    /// Checkpoints asked for, minus one.
    pub k: u32,
    /// Hash rounds per segment.
    pub g: u32,
}

impl fmt::Debug for Challenge {
    /// The token is left out: it is the handle to a solution in flight.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("seed", &hex::encode(&self.seed))
            .field("k", &self.k)
            .field("g", &self.g)
            .finish_non_exhaustive()
    }
}

/// What the gateway asked of one challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeRecord {
    /// Platform's k.
    pub k: u32,
    /// The gateway's k'.
    pub k_prime: u32,
    /// Rounds per segment.
    pub g: u32,
    /// When it is forgotten, unix seconds.
    pub expires_at: u64,
}

struct BookInner {
    map: HashMap<[u8; 32], (u64, ChallengeRecord)>,
    /// Insertion order (with a sequence number to skip entries already taken).
    order: VecDeque<([u8; 32], u64)>,
    seq: u64,
    /// Capacity and lifetime: kept with the entries so a policy reload can change
    /// them in place without dropping the challenges already handed out.
    max: usize,
    ttl: u64,
}

/// Challenges the gateway made harder, keyed by a hash of the challenge token (the
/// token itself is not kept). Bounded and expiring: the oldest entries are evicted
/// first when full.
///
/// An evicted or unknown challenge is forwarded untouched; its solution then carries
/// `k'+1` checkpoints the platform will not accept, so eviction fails closed for the
/// client concerned. Size `max_challenges` above the challenge rate times the TTL.
pub struct ChallengeBook {
    inner: Mutex<BookInner>,
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
        }
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

    /// Remembers that `challenge_token` was answered with `k_prime`.
    pub fn remember(&self, challenge_token: &str, k: u32, k_prime: u32, g: u32, now: u64) {
        let key = token_key(challenge_token);
        let mut inner = self.inner.lock();
        inner.seq += 1;
        let seq = inner.seq;
        let record = ChallengeRecord { k, k_prime, g, expires_at: now.saturating_add(inner.ttl) };
        inner.map.insert(key, (seq, record));
        inner.order.push_back((key, seq));
        // Taken entries leave stale order slots behind; drop them before they outgrow
        // the map, so the queue stays bounded by `2 * max` too.
        if inner.order.len() > 2 * inner.max {
            let BookInner { map, order, .. } = &mut *inner;
            order.retain(|(k, s)| map.get(k).is_some_and(|(live, _)| live == s));
        }
        // Evict expired entries, then the oldest while over capacity.
        while let Some(&(front, fseq)) = inner.order.front() {
            let live = inner.map.get(&front).filter(|(s, _)| *s == fseq).map(|(_, r)| r.expires_at);
            let evict = match live {
                None => true, // already taken or replaced
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

    /// Takes (removes) the record of `challenge_token` if present and not expired. A
    /// challenge is single-use, so verification work cannot be replayed.
    pub fn take(&self, challenge_token: &str, now: u64) -> Option<ChallengeRecord> {
        let key = token_key(challenge_token);
        let mut inner = self.inner.lock();
        let (_, rec) = inner.map.remove(&key)?;
        (rec.expires_at > now).then_some(rec)
    }

    /// Challenges remembered now.
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Whether none are remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------------------------------
// Solving and verifying
// ---------------------------------------------------------------------------------------

/// `g` rounds of SHA-256 starting from `from`.
fn rounds(from: [u8; 32], g: u32) -> [u8; 32] {
    let mut d = from;
    for _ in 0..g {
        d = Sha256::digest(d).into();
    }
    d
}

/// Solves a challenge as wrangler does: the `k+1` checkpoints in standard base64.
/// (For tests and the load generator; the gateway never solves.)
pub fn solve(seed: &[u8], k: u32, g: u32) -> Vec<String> {
    let mut cp: [u8; 32] = Sha256::digest(seed).into();
    let mut out = Vec::with_capacity(k as usize + 1);
    out.push(STANDARD.encode(cp));
    for _ in 0..k {
        cp = rounds(cp, g);
        out.push(STANDARD.encode(cp));
    }
    out
}

/// Verifies the extra segments `cp[k..k']` by spot-check and returns the first `k+1`
/// checkpoints (what the platform asked for) and the hashes spent.
///
/// `min(spot_checks, k' - k)` distinct extra segments are chosen with `rng` and each
/// is recomputed with `g` hashes, so the work is at most `spot_checks * g`. Every
/// extra checkpoint must be a well-formed digest. With `spot_checks >= k' - k` every
/// extra segment is checked and the result is deterministic.
pub fn verify_and_trim<R: rand::Rng + ?Sized>(
    checkpoints: &[String],
    k: u32,
    k_prime: u32,
    g: u32,
    spot_checks: u32,
    rng: &mut R,
) -> Result<(Vec<String>, u64), PowError> {
    check_difficulty(k, k_prime, g)?;
    let (k, k_prime) = (k as usize, k_prime as usize);
    if checkpoints.len() != k_prime + 1 {
        return Err(PowError::WrongCount { expected: k_prime + 1, got: checkpoints.len() });
    }
    let mut extra = Vec::with_capacity(k_prime - k + 1);
    for (i, s) in checkpoints.iter().enumerate().skip(k) {
        extra.push(decode_checkpoint(s, i)?);
    }
    let segments = k_prime - k;
    let n = (spot_checks as usize).min(segments);
    let mut hashes = 0u64;
    let mut picked: Vec<usize> = rand::seq::index::sample(rng, segments, n).into_vec();
    picked.sort_unstable();
    for s in picked {
        hashes += u64::from(g);
        if rounds(extra[s], g) != extra[s + 1] {
            return Err(PowError::Mismatch { segment: k + s });
        }
    }
    Ok((checkpoints[..=k].to_vec(), hashes))
}

/// Refuses a `k'` below the platform's `k`, a `g` of 0, and `k' * g` above wrangler's cap.
pub(crate) fn check_difficulty(k: u32, k_prime: u32, g: u32) -> Result<(), PowError> {
    if k_prime < k || g == 0 || u64::from(k_prime) * u64::from(g) > WRANGLER_MAX_WORK {
        return Err(PowError::BadDifficulty { k, k_prime, g, max: WRANGLER_MAX_WORK });
    }
    Ok(())
}

/// One checkpoint: standard base64 of a 32-byte SHA-256 digest.
pub(crate) fn decode_checkpoint(s: &str, index: usize) -> Result<[u8; 32], PowError> {
    STANDARD
        .decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or(PowError::BadCheckpoint { index })
}
