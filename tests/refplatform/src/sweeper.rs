//! Expiry cleanup.
//!
//! Unclaimed accounts are deleted with everything in them once their
//! lifetime passes. The work itself is [`crate::Platform::sweep`]; this
//! module defines its record and the background loop that calls it when
//! the platform runs as a server. Tests skip the loop and call `sweep()`
//! after moving a `ManualClock`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::accounts::ResourceCounts;
use crate::Platform;

/// Why an account was cleaned up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanupReason {
    /// Lifetime passed without a claim.
    Expired,
    /// Deleted on request.
    Deleted,
}

/// One account removal, with what it held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleanupRecord {
    /// Account removed.
    pub account_id: String,
    /// When (platform clock).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Why.
    pub reason: CleanupReason,
    /// What was removed.
    pub removed: ResourceCounts,
}

/// Run `platform.sweep()` every `interval` until the task is aborted.
pub fn spawn_sweeper(platform: Arc<Platform>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let removed = platform.sweep();
            if !removed.is_empty() {
                tracing::info!(count = removed.len(), "sweeper removed expired accounts");
            }
        }
    })
}
