//! Adaptive proof-of-work: sources with unclaimed-cleanup debt solve longer chains.
//!
//! The platform's challenge is `{challengeToken, seed, k, g}`; the solution is the chain
//! `cp[0] = sha256(seed)`, `cp[j+1] = sha256^g(cp[j])`, sent as the `k+1` checkpoints
//! `cp[0..=k]` in standard base64. The gateway cannot change what the platform checks,
//! but it can ask for *more*: it answers the challenge with `k' > k` (same seed and `g`),
//! remembers every challenge it passes on, with its `k'` and a compact form of who
//! fetched it ([`ChallengeBook`]), and when the solution comes back it verifies the
//! extra segments and forwards only the first `k+1` checkpoints, which is exactly what
//! the platform asked for.
//!
//! Every verified segment starts at the client's own checkpoint before it. The segment
//! `cp[k] -> cp[k+1]` is always verified: it chains the extra work to `cp[k]`, which the
//! platform binds to the seed, so a tail of valid segments computed once from some other
//! start cannot be hung onto every challenge. Of the other `k' - k - 1` segments, `s`
//! are chosen at random after the solution has arrived and recomputed, so verification
//! costs at most `(s + 1) * g` hashes however long the chain; [`forging`] shows why
//! skipping segments and hoping the checks miss them costs more per success than doing
//! the work.
//!
//! A challenge is redeemed once: the first solution naming it burns it, whether it is
//! forwarded or refused.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::fmt;

mod book;
mod forging;

pub use book::{BookSnapshot, ChallengeBook, ChallengeRecord, IssuedTo, Redeemed, SavedChallenge};
pub use forging::{
    forger_work_per_success, pass_probability, spot_checks_against_tails,
    tail_forger_work_per_success,
};

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
    /// The challenge was already redeemed through the gateway.
    #[error("proof-of-work rejected: this challenge was already used (each challenge answers one attempt)")]
    Burned,
    /// The source owes harder work and the challenge did not come through the gateway
    /// (or was forgotten), so what it was asked for is unknown.
    #[error("proof-of-work rejected: this challenge was not issued to your address by the gateway, and your address owes harder proof-of-work")]
    NotIssued,
    /// Extra checkpoints of this solution were already part of an earlier one: a chain
    /// computed once and reused (honest chains start from a fresh seed and never
    /// repeat a digest).
    #[error("proof-of-work rejected: this solution reuses work from an earlier one. Request a new challenge and solve it again.")]
    ReusedWork,
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
    /// Extra segments verified per solution at random, besides the chaining segment
    /// `cp[k] -> cp[k+1]` that is always verified.
    pub spot_checks: u32,
    /// Seconds a challenge (and a burned token) is remembered (the platform's own
    /// challenge lifetime is a few minutes; longer only costs memory).
    pub challenge_ttl_secs: u64,
    /// Bound on remembered challenges, so a flood of challenge requests cannot grow
    /// memory without limit.
    pub max_challenges: usize,
}

impl Default for PowPolicy {
    /// +1 checkpoint per 10 units (an address at the default `harder_pow` budget of 60
    /// solves k+6), at most 8x the platform's work, 4 spot checks besides the chaining
    /// segment (a client skipping half the extra work is caught at least 15 times in 16).
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

/// Verifies the extra segments `cp[k..=k']` and returns the first `k+1` checkpoints
/// (what the platform asked for) and the hashes spent.
///
/// The chaining segment `cp[k] -> cp[k+1]` is always recomputed; then
/// `min(spot_checks, k' - k - 1)` distinct segments among the rest are chosen with `rng`
/// (so after the solution is known) and each is recomputed from the client's own
/// checkpoint before it, with `g` hashes. The work is at most `(spot_checks + 1) * g`.
/// Every extra checkpoint must be a well-formed digest. With `spot_checks >= k' - k - 1`
/// every extra segment is checked and the result is deterministic.
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
    let mut hashes = 0u64;
    if segments > 0 {
        let rest = segments - 1;
        let n = (spot_checks as usize).min(rest);
        let mut picked: Vec<usize> =
            rand::seq::index::sample(rng, rest, n).into_iter().map(|s| s + 1).collect();
        picked.sort_unstable();
        for s in std::iter::once(0).chain(picked) {
            hashes += u64::from(g);
            if rounds(extra[s], g) != extra[s + 1] {
                return Err(PowError::Mismatch { segment: k + s });
            }
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
