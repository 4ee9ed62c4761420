//! Signed lifecycle events pushed to the gateway.
//!
//! The claim happens on the platform, out of the gateway's sight, and so do
//! expiry and deletion; without being told, a gateway would keep counting
//! quota against accounts that no longer exist. The platform therefore
//! POSTs a small JSON event on each of these, signed with HMAC-SHA256 over
//! the exact body so the receiver can reject forgeries. Delivery is best
//! effort: failures are logged and dropped (the gateway can reconcile
//! through `GET /internal/accounts`).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::accounts::ResourceCounts;

/// Header carrying `sha256=<hex hmac>` of the body.
pub const SIGNATURE_HEADER: &str = "X-Platform-Signature";

/// Where to send events and the shared secret that signs them. The same
/// secret authenticates the `/internal/accounts` reconciliation API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// Receiver URL (POST).
    pub url: String,
    /// HMAC key; also the bearer token of the internal API.
    pub secret: String,
}

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A human claimed it.
    Claimed,
    /// The sweeper removed it after its lifetime.
    Expired,
    /// It was deleted on request.
    Deleted,
}

/// One event, as serialized on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformEvent {
    /// Event kind.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Account concerned.
    pub account_id: String,
    /// When it happened (platform clock).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What was removed (all zero for `claimed`).
    pub removed: ResourceCounts,
}

/// `sha256=<hex>` signature of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an
    // impossible signature rather than panicking if it ever did.
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::from("sha256=invalid"),
    }
}

/// Constant-time check of a `sha256=<hex>` signature header value.
pub fn verify_signature(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            mac.verify_slice(&sig).is_ok()
        }
        Err(_) => false,
    }
}

/// POST one event. Never fails: problems are logged.
pub async fn deliver(client: reqwest::Client, cfg: EventsConfig, event: PlatformEvent) {
    let body = match serde_json::to_vec(&event) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "could not serialize platform event");
            return;
        }
    };
    let signature = sign(&cfg.secret, &body);
    let res = client
        .post(&cfg.url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    match res {
        Ok(r) if r.status().is_success() => {
            tracing::info!(kind = ?event.kind, account = %event.account_id, "event delivered");
        }
        Ok(r) => {
            tracing::warn!(kind = ?event.kind, account = %event.account_id, status = %r.status(), "event receiver refused event");
        }
        Err(e) => {
            tracing::warn!(kind = ?event.kind, account = %event.account_id, error = %e, "event delivery failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trips() {
        let s = sign("k", b"body");
        assert!(verify_signature("k", b"body", &s));
        assert!(!verify_signature("k", b"other", &s));
        assert!(!verify_signature("j", b"body", &s));
    }
}
