//! A gateway-wide budget of request-body bytes held in memory.
//!
//! Some bodies are held whole before they are forwarded (asset manifests, account
//! creation with its proof-of-work), each at most [`crate::stage::body::MAX_HELD_BODY`].
//! Many such requests at once could still hold gigabytes, so every held byte is
//! reserved here first ([`HeldBudget::hold`]); past the budget the request is refused
//! with 503 and `Retry-After` instead of being held. A [`HeldBytes`] guard lives in the
//! request's context and gives its bytes back when the request ends, however it ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Default budget: 64 bodies at the 4 MiB hold limit.
pub const DEFAULT_MAX_HELD_BODY_BYTES: u64 = 256 * 1024 * 1024;

/// Bytes held by all requests together, and the most they may hold.
#[derive(Debug)]
pub struct HeldBudget {
    limit: AtomicU64,
    held: AtomicU64,
}

impl Default for HeldBudget {
    fn default() -> Self {
        HeldBudget::new(DEFAULT_MAX_HELD_BODY_BYTES)
    }
}

impl HeldBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        HeldBudget { limit: AtomicU64::new(limit), held: AtomicU64::new(0) }
    }

    /// Changes the limit (from `[server] max_held_body_bytes`).
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Reserves `n` more bytes for the request whose guard is `guard`; false (nothing
    /// reserved) when that would pass the limit.
    pub fn hold(self: &Arc<Self>, guard: &mut Option<HeldBytes>, n: u64) -> bool {
        let limit = self.limit();
        let reserved = self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            held.checked_add(n).filter(|total| *total <= limit)
        });
        let Ok(before) = reserved else { return false };
        // One line per change (at debug level), so a test or an operator can follow
        // the total without polling.
        tracing::debug!(held = before + n, "request body bytes held");
        let g = guard.get_or_insert_with(|| HeldBytes { budget: self.clone(), bytes: 0 });
        g.bytes = g.bytes.saturating_add(n);
        true
    }
}

/// The bytes one request holds; given back on drop.
#[derive(Debug)]
pub struct HeldBytes {
    budget: Arc<HeldBudget>,
    bytes: u64,
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        let before = self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        tracing::debug!(
            bytes = self.bytes,
            held = before.saturating_sub(self.bytes),
            "held request body bytes given back"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_up_to_the_limit_and_gives_back_on_drop() {
        let budget = Arc::new(HeldBudget::new(100));
        let (mut a, mut b) = (None, None);
        assert!(budget.hold(&mut a, 60));
        assert!(!budget.hold(&mut b, 41), "over the limit");
        assert!(budget.hold(&mut b, 40));
        assert_eq!(budget.held(), 100);
        drop(a);
        assert_eq!(budget.held(), 40);
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
