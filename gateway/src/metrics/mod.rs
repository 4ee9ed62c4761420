//! The gateway's metrics, kept with prometheus-client.
//!
//! - [`families`]: what the request phases count (decisions by route class and
//!   outcome, latency histograms, upstream statuses, budget trips, challenges issued).
//! - [`state`]: what is read from the engine, tracker and store when collected (rule
//!   outcomes, table keys, evictions and overflow, ledger, accounts by state,
//!   proof-of-work, fair share, store health).
//! - [`render`]: `/metrics`, both kinds in one registry as Prometheus text.
//! - [`observe`]: the per-request facts and the one call per proxy phase that
//!   records them.
//!
//! The same numbers go out over OTLP when `[telemetry]` is configured
//! ([`crate::telemetry`]).
//!
//! The request families live in one process-wide [`RequestMetrics`]: the proxy records
//! into it from Pingora's worker threads and the admin listener reads it from its own
//! runtime, and one gateway process serves one proxy, so there is nothing to tell apart.

pub mod families;
pub mod observe;
pub mod render;
pub mod state;

pub use families::RequestMetrics;
pub use render::{render, CONTENT_TYPE};
pub use state::register_store_health;

static GLOBAL: std::sync::OnceLock<RequestMetrics> = std::sync::OnceLock::new();

/// The process's request families.
pub fn global() -> &'static RequestMetrics {
    GLOBAL.get_or_init(RequestMetrics::default)
}

#[cfg(test)]
mod tests;
