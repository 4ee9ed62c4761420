//! An abuse-control and quota gateway for anonymous deploys.
//!
//! A Pingora reverse proxy in front of a temporary-deploy API (the one
//! `wrangler deploy --temporary` speaks). It decides in `request_filter` with the
//! `policy` crate, refuses on keep-alive connections with v4 envelopes wrangler can
//! print, and accounts for answers in the response phases.
#![deny(missing_docs)]

pub mod access_log;
pub mod admin;
pub mod audit;
pub mod blocks;
pub mod certs;
pub mod clock;
pub mod config;
pub mod decisions;
#[cfg(feature = "demo")]
pub mod demo;
pub mod enforce;
pub mod envelope;
pub mod explain;
pub mod fleet;
pub mod held;
pub mod inflight;
pub mod journal;
pub mod metrics;
pub mod operator;
pub mod proxy;
pub mod reload;
pub mod replay;
pub mod report;
pub mod respond;
pub mod server;
pub mod shutdown;
pub mod stage;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod tracker;
pub mod uploads;
