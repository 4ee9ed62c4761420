//! Client side of the proof-of-work challenge.
//!
//! Written here from the protocol description rather than borrowed from the
//! reference platform, so the load tester is a second, independent
//! implementation: if the two disagree, the swarm's account creations fail
//! and the disagreement shows instead of being hidden by shared code.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Solve a chain: `cp[0] = sha256(seed)`, then each further checkpoint is
/// the previous one hashed `g` times; `k + 1` checkpoints in all.
pub fn solve(seed: &[u8], k: u32, g: u32) -> Vec<[u8; 32]> {
    let mut out = Vec::with_capacity(k as usize + 1);
    let mut h: [u8; 32] = Sha256::digest(seed).into();
    out.push(h);
    for _ in 0..k {
        for _ in 0..g {
            h = Sha256::digest(h).into();
        }
        out.push(h);
    }
    out
}

/// Decode the seed the platform sends (base64url; tolerate padding and the
/// standard alphabet, since the seed format is the server's choice).
pub fn decode_seed(seed: &str) -> Result<Vec<u8>, String> {
    let s = seed.trim();
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| STANDARD.decode(s))
        .map_err(|e| format!("challenge seed is not base64: {e}"))
}

/// How the checkpoints go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One standard-base64 string of all digests concatenated: what real
    /// wrangler 4.164 sends.
    Concatenated,
    /// A list of standard-base64 digests, one per checkpoint.
    List,
}

/// Encode checkpoints as JSON for `solution.checkpoints`.
pub fn encode(checkpoints: &[[u8; 32]], encoding: Encoding) -> serde_json::Value {
    match encoding {
        Encoding::Concatenated => serde_json::Value::String(STANDARD.encode(checkpoints.concat())),
        Encoding::List => serde_json::Value::Array(
            checkpoints.iter().map(|c| serde_json::Value::String(STANDARD.encode(c))).collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_has_k_plus_one_links() {
        let cps = solve(b"seed", 3, 5);
        assert_eq!(cps.len(), 4);
        let first: [u8; 32] = Sha256::digest(b"seed").into();
        assert_eq!(cps[0], first);
        let mut h = cps[0];
        for _ in 0..5 {
            h = Sha256::digest(h).into();
        }
        assert_eq!(cps[1], h);
    }

    #[test]
    fn seed_decodes_with_or_without_padding() {
        let raw = [0xfbu8; 32];
        assert_eq!(decode_seed(&URL_SAFE_NO_PAD.encode(raw)).ok(), Some(raw.to_vec()));
        assert_eq!(decode_seed(&URL_SAFE.encode(raw)).ok(), Some(raw.to_vec()));
        assert!(decode_seed("***").is_err());
    }
}
