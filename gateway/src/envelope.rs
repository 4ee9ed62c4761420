//! Cloudflare v4 error envelopes, as [`bytes::Bytes`] for Pingora.
//!
//! The envelope and its codes are part of the platform contract
//! ([`policy::platform`]); this only hands them to the response writer.

use bytes::Bytes;

pub use policy::platform::codes;

/// `{"success":false,"errors":[{"code":..,"message":..}],"messages":[],"result":null}`.
pub fn error_body(code: u32, message: &str) -> Bytes {
    Bytes::from(policy::platform::error_body(code, message))
}
