//! Token hashing: the gateway recognises a token without storing it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Keyed hash (HMAC-SHA256) of API tokens, so the gateway recognises a token without
/// storing it.
///
/// Its `Debug` never shows the key: the key is what makes the hashes unguessable.
#[derive(Clone)]
pub struct TokenHasher {
    key: [u8; 32],
}

impl TokenHasher {
    /// A hasher with a fresh random key from the operating system.
    ///
    /// Hashes then only mean something inside this process: fine for a single gateway
    /// whose account book lives in memory. Several gateways sharing a book need
    /// [`TokenHasher::with_key`] with the same configured key.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        TokenHasher { key }
    }

    /// A hasher with a configured key of at least 16 bytes (shorter keys would make the
    /// hashes guessable by brute force over the key).
    pub fn with_key(key: &[u8]) -> Result<Self, KeyTooShort> {
        if key.len() < 16 {
            return Err(KeyTooShort(key.len()));
        }
        // HMAC accepts any key length; fold it to 32 bytes so the struct stays fixed-size.
        let mut folded = [0u8; 32];
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"policy/accounts/token-key")
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(key);
        folded.copy_from_slice(&mac.finalize().into_bytes());
        Ok(TokenHasher { key: folded })
    }

    /// Hashes a token (the bare token, without `Bearer `).
    pub fn hash(&self, token: &str) -> TokenHash {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable_hmac());
        mac.update(token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(&mac.finalize().into_bytes());
        TokenHash(out)
    }

    /// Hashes the token of an `Authorization` header value (`Bearer <token>`), or `None`
    /// when the header is not a bearer token.
    pub fn hash_authorization(&self, header: &str) -> Option<TokenHash> {
        let (scheme, token) = header.trim().split_once(' ')?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return None;
        }
        Some(self.hash(token))
    }
}

/// A token-hash key under 16 bytes, refused by [`TokenHasher::with_key`]; holds the
/// length given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token-hash key must be at least 16 bytes, got {0}")]
pub struct KeyTooShort(pub usize);

/// HMAC-SHA256 takes keys of any length, so key setup cannot fail; this keeps the
/// impossible branch free of `unwrap`.
#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    unreachable!("HMAC-SHA256 accepts keys of any length")
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher { key: <redacted> }")
    }
}

/// The keyed hash of one API token.
///
/// `Debug` and `Display` show only the first 8 hex digits: enough to correlate log
/// lines, too little to be useful as a lookup key for anyone reading the logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The raw 32 bytes (for a shared store keyed by hash).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash read back from a store written with [`TokenHash::as_bytes`] (only
    /// meaningful with the same [`TokenHasher`] key).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenHash(bytes)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", hex::encode(&self.0[..4]))
    }
}
