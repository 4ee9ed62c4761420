//! Keyed hashes of API tokens.
//!
//! The gateway must recognise a temporary account's token on later calls (to count by
//! account, and to attribute calls to the source that created the account) without
//! ever holding the token itself. An HMAC-SHA256 under a key that never leaves the
//! process gives a stable identifier that cannot be reversed or tested offline.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Hashes tokens under a secret key.
#[derive(Clone)]
pub struct TokenHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHasher(<key hidden>)")
    }
}

impl TokenHasher {
    /// A hasher with a fresh random key (hashes do not survive a restart).
    pub fn random() -> Self {
        TokenHasher { key: rand::random() }
    }

    /// A hasher with a configured key, so hashes are stable across restarts.
    pub fn with_key(key: [u8; 32]) -> Self {
        TokenHasher { key }
    }

    /// `tok_` followed by 32 hex digits (128 bits of the HMAC).
    pub fn hash(&self, token: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(token.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("tok_{}", hex::encode(&digest[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_keyed_and_hides_the_token() {
        let a = TokenHasher::with_key([1; 32]);
        let b = TokenHasher::with_key([2; 32]);
        let token = "secret-token-value";
        assert_eq!(a.hash(token), a.hash(token));
        assert_ne!(a.hash(token), b.hash(token));
        assert!(!a.hash(token).contains(token));
        assert!(!format!("{a:?}").contains("1, 1"));
    }
}
