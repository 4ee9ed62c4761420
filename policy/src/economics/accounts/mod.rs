//! Temporary accounts the gateway saw created: who created them, their token (as a keyed
//! hash only), their lifecycle, and per-source account quotas.
//!
//! The platform hands an unauthenticated client a working API token. Later calls carry
//! only that token, often from another address (CI runners, rotating proxies), so the
//! gateway must be able to say "this token belongs to account A, created by source S"
//! without keeping the token: whoever holds the token owns the account, and a gateway
//! memory dump or log must not hand accounts out. [`TokenHasher`] keys an HMAC with a
//! secret so the stored hashes cannot be brute-forced back to tokens offline either.
//!
//! Everything here is pure logic with time passed in (`u64` unix seconds).

mod book;
mod limits;
mod source;
mod token;

pub use book::{AccountBook, AccountInfo, AccountState, Event};
pub use limits::{AccountLimitKind, AccountLimits, AccountRefusal};
pub use source::{SourceKey, SourceKeys, SourceKind};
pub use token::{KeyTooShort, TokenHash, TokenHasher};

/// Fingerprints are not spelled out (they mean nothing to a user).
pub(crate) fn describe(key: &SourceKey) -> String {
    match key {
        SourceKey::Ip(ip) => format!("your address {ip}"),
        SourceKey::Prefix(n) => format!("your network {n}"),
        SourceKey::HttpFp(_) => "your HTTP client".to_string(),
        SourceKey::TlsFp(_) => "your TLS client".to_string(),
        SourceKey::Global => "all clients together".to_string(),
    }
}

/// "24 hours", "90 minutes", "45 seconds".
pub(crate) fn human_secs(secs: u64) -> String {
    if secs >= 3600 && secs / 3600 * 3600 == secs {
        let h = secs / 3600;
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    } else if secs >= 60 && secs / 60 * 60 == secs {
        let m = secs / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{secs} second{}", if secs == 1 { "" } else { "s" })
    }
}
