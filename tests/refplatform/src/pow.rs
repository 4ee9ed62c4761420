//! Proof-of-work for account creation.
//!
//! The scheme is the one real wrangler solves: a sequential sha256 chain.
//! `cp[0] = sha256(seed)`, and `cp[j+1]` is `cp[j]` hashed `g` more times.
//! The client sends `cp[0..=k]`. Producing the chain costs `k*g` hashes and
//! cannot be parallelised, but checking any one segment costs only `g`, so a
//! verifier spot-checks a few random segments instead of redoing the work.
//! A cheater who fakes a fraction `f` of the segments survives `s` spot
//! checks with probability about `(1-f)^s`.
//!
//! The gateway and load tester reuse this module as a library: [`solve`] to
//! act as a client, [`verify`] and [`ChallengeBook`] to act as a server.

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::seq::index::sample;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// One 32-byte sha256 digest of the chain.
pub type Checkpoint = [u8; 32];

/// Largest `k*g` real wrangler 4.164 agrees to solve; a challenge above this
/// is refused by the client as "not supported by this version".
pub const WRANGLER_MAX_ITERATIONS: u64 = 64_000_000;

/// Why a proof-of-work submission was refused. Each case has its own
/// message and v4 error code so a client (or a test) can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// The checkpoints could not be decoded (bad base64, wrong digest size).
    #[error("proof-of-work solution is malformed: {0}")]
    Malformed(String),
    /// The token was never issued here (or was forgotten long ago).
    #[error("unknown challenge token; request a new challenge")]
    UnknownToken,
    /// The token was already redeemed once; tokens are single-use.
    #[error("challenge token was already used; request a new challenge")]
    Reused,
    /// The token is older than the challenge TTL.
    #[error("challenge token has expired; request a new challenge")]
    Expired,
    /// The chain does not check out (wrong length, wrong start, or a
    /// spot-checked segment does not hash to the next checkpoint).
    #[error("proof-of-work solution is incorrect")]
    WrongSolution,
}

impl PowError {
    /// The Cloudflare-v4-style error code used for this refusal. The codes
    /// are this emulator's choice (the public API does not document them);
    /// they avoid 1035..=1039, which wrangler reserves for event codes.
    pub fn code(&self) -> u32 {
        match self {
            PowError::Malformed(_) => 1020,
            PowError::UnknownToken => 1021,
            PowError::Reused => 1022,
            PowError::Expired => 1023,
            PowError::WrongSolution => 1024,
        }
    }
}

fn sha256(data: &[u8]) -> Checkpoint {
    Sha256::digest(data).into()
}

/// Hash `from` `g` times.
fn run_segment(from: &Checkpoint, g: u32) -> Checkpoint {
    let mut h = *from;
    for _ in 0..g {
        h = sha256(&h);
    }
    h
}

/// Solve a challenge: returns the `k+1` checkpoints `cp[0..=k]`.
///
/// `seed` is the raw seed bytes (already base64url-decoded).
pub fn solve(seed: &[u8], k: u32, g: u32) -> Vec<Checkpoint> {
    let mut out = Vec::with_capacity(k as usize + 1);
    let mut h = sha256(seed);
    out.push(h);
    for _ in 0..k {
        h = run_segment(&h, g);
        out.push(h);
    }
    out
}

/// Verify a solution by checking its length, `cp[0]`, and `spot_checks`
/// randomly chosen segments (all of them when `spot_checks >= k`).
pub fn verify<R: Rng + ?Sized>(
    seed: &[u8],
    k: u32,
    g: u32,
    checkpoints: &[Checkpoint],
    spot_checks: usize,
    rng: &mut R,
) -> Result<(), PowError> {
    if checkpoints.len() != k as usize + 1 {
        return Err(PowError::WrongSolution);
    }
    if checkpoints[0] != sha256(seed) {
        return Err(PowError::WrongSolution);
    }
    let segments = k as usize;
    let picks: Vec<usize> = if spot_checks >= segments {
        (0..segments).collect()
    } else {
        sample(rng, segments, spot_checks).into_vec()
    };
    for j in picks {
        if run_segment(&checkpoints[j], g) != checkpoints[j + 1] {
            return Err(PowError::WrongSolution);
        }
    }
    Ok(())
}

/// Encode checkpoints the way wrangler 4.164 sends them: all digests
/// concatenated, then standard base64 (one string).
pub fn encode_checkpoints(checkpoints: &[Checkpoint]) -> String {
    STANDARD.encode(checkpoints.concat())
}

/// Encode checkpoints as a list of standard-base64 digests, the other
/// accepted form (what the protocol notes describe).
pub fn encode_checkpoints_list(checkpoints: &[Checkpoint]) -> Vec<String> {
    checkpoints.iter().map(|c| STANDARD.encode(c)).collect()
}

fn decode_b64(s: &str) -> Result<Vec<u8>, PowError> {
    STANDARD
        .decode(s.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.trim()))
        .map_err(|e| PowError::Malformed(format!("bad base64: {e}")))
}

fn split_digests(bytes: &[u8]) -> Result<Vec<Checkpoint>, PowError> {
    if bytes.is_empty() || !bytes.chunks_exact(32).remainder().is_empty() {
        return Err(PowError::Malformed(format!(
            "checkpoints are {} bytes, not a whole number of 32-byte digests",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut d = [0u8; 32];
            d.copy_from_slice(c);
            d
        })
        .collect())
}

/// Decode the `solution.checkpoints` JSON value. Real wrangler sends one
/// base64 string of the concatenated digests; a list of base64 digests is
/// accepted as well, since that is how the protocol notes describe it.
pub fn decode_checkpoints(value: &serde_json::Value) -> Result<Vec<Checkpoint>, PowError> {
    match value {
        serde_json::Value::String(s) => split_digests(&decode_b64(s)?),
        serde_json::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let s = item
                    .as_str()
                    .ok_or_else(|| PowError::Malformed("checkpoint is not a string".into()))?;
                let bytes = decode_b64(s)?;
                let mut d = split_digests(&bytes)?;
                if d.len() != 1 {
                    return Err(PowError::Malformed("checkpoint is not 32 bytes".into()));
                }
                out.append(&mut d);
            }
            Ok(out)
        }
        _ => {
            Err(PowError::Malformed("checkpoints must be a base64 string or a list of them".into()))
        }
    }
}

/// A challenge as handed to a client (the `result` of the challenge call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// Opaque single-use token naming this challenge.
    pub challenge_token: String,
    /// 32 random bytes, base64url without padding (what wrangler decodes).
    pub seed: String,
    /// Number of segments.
    pub k: u32,
    /// Hashes per segment.
    pub g: u32,
}

impl Challenge {
    /// The raw seed bytes.
    pub fn seed_bytes(&self) -> Result<Vec<u8>, PowError> {
        URL_SAFE_NO_PAD
            .decode(self.seed.trim_end_matches('='))
            .map_err(|e| PowError::Malformed(format!("bad seed: {e}")))
    }

    /// Solve this challenge (client side).
    pub fn solve(&self) -> Result<Vec<Checkpoint>, PowError> {
        Ok(solve(&self.seed_bytes()?, self.k, self.g))
    }
}

#[derive(Debug)]
struct Issued {
    seed: Vec<u8>,
    k: u32,
    g: u32,
    expires_at: OffsetDateTime,
    used: bool,
}

/// Server-side ledger of issued challenges: issues them, and redeems each
/// at most once before it expires. Time comes from the caller so the
/// owner's injected clock governs expiry.
#[derive(Debug)]
pub struct ChallengeBook {
    k: u32,
    g: u32,
    ttl: time::Duration,
    spot_checks: usize,
    issued: HashMap<String, Issued>,
}

impl ChallengeBook {
    /// A book issuing `k`×`g` challenges valid for `ttl`, verified with
    /// `spot_checks` random segments.
    pub fn new(k: u32, g: u32, ttl: std::time::Duration, spot_checks: usize) -> Self {
        Self {
            k,
            g,
            ttl: time::Duration::try_from(ttl).unwrap_or(time::Duration::minutes(5)),
            spot_checks,
            issued: HashMap::new(),
        }
    }

    /// Issue a fresh challenge at `now`.
    pub fn issue(&mut self, now: OffsetDateTime) -> Challenge {
        self.prune(now);
        let mut rng = rand::thread_rng();
        let mut seed = vec![0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut tok = [0u8; 24];
        rng.fill_bytes(&mut tok);
        let token = URL_SAFE_NO_PAD.encode(tok);
        let challenge = Challenge {
            challenge_token: token.clone(),
            seed: URL_SAFE_NO_PAD.encode(&seed),
            k: self.k,
            g: self.g,
        };
        self.issued.insert(
            token,
            Issued { seed, k: self.k, g: self.g, expires_at: now + self.ttl, used: false },
        );
        challenge
    }

    /// Redeem `token` with `checkpoints` at `now`. The token is consumed by
    /// any attempt that names a live token, right or wrong, so a client
    /// cannot grind one challenge with repeated guesses.
    pub fn redeem(
        &mut self,
        token: &str,
        checkpoints: &[Checkpoint],
        now: OffsetDateTime,
    ) -> Result<(), PowError> {
        self.prune(now);
        let issued = self.issued.get_mut(token).ok_or(PowError::UnknownToken)?;
        if issued.used {
            return Err(PowError::Reused);
        }
        if now > issued.expires_at {
            issued.used = true;
            return Err(PowError::Expired);
        }
        issued.used = true;
        verify(
            &issued.seed,
            issued.k,
            issued.g,
            checkpoints,
            self.spot_checks,
            &mut rand::thread_rng(),
        )
    }

    /// Number of challenges still remembered (issued, used or expired but
    /// not yet forgotten).
    pub fn len(&self) -> usize {
        self.issued.len()
    }

    /// True when no challenge is remembered.
    pub fn is_empty(&self) -> bool {
        self.issued.is_empty()
    }

    /// Forget challenges well past expiry. They are kept for one extra TTL
    /// so a late or replayed submission gets "expired"/"used" rather than
    /// the less helpful "unknown".
    fn prune(&mut self, now: OffsetDateTime) {
        let ttl = self.ttl;
        self.issued.retain(|_, i| now <= i.expires_at + ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_then_verify_all_segments() {
        let seed = [7u8; 32];
        let cps = solve(&seed, 4, 10);
        assert_eq!(cps.len(), 5);
        assert!(verify(&seed, 4, 10, &cps, 100, &mut rand::thread_rng()).is_ok());
        let mut bad = cps.clone();
        bad[3][0] ^= 1;
        assert_eq!(
            verify(&seed, 4, 10, &bad, 100, &mut rand::thread_rng()),
            Err(PowError::WrongSolution)
        );
    }

    #[test]
    fn both_encodings_decode() {
        let cps = solve(b"seed", 2, 3);
        let s = serde_json::Value::String(encode_checkpoints(&cps));
        assert_eq!(decode_checkpoints(&s).ok(), Some(cps.clone()));
        let l = serde_json::json!(encode_checkpoints_list(&cps));
        assert_eq!(decode_checkpoints(&l).ok(), Some(cps));
    }
}
