//! Reference platform: an emulation of Cloudflare's temporary-deploy API
//! ("`wrangler deploy --temporary`") faithful enough that unmodified real
//! wrangler can provision an account, deploy and redeploy against it.
//!
//! It exists so the abuse-control gateway can be tested end to end without
//! the real service: it issues proof-of-work challenges, creates
//! short-lived accounts with claim links, accepts the Workers calls
//! wrangler makes, tracks per-account resources (so the gateway's quotas
//! can be checked), deletes unclaimed accounts when they expire, and tells
//! the gateway about claims, expiries and deletions with signed events.
//!
//! Time comes from an injected [`Clock`] so tests are deterministic.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use refplatform::{spawn, PlatformConfig, SystemClock};
//! let running = spawn(PlatformConfig::default(), Arc::new(SystemClock), "127.0.0.1:0".parse().unwrap()).await?;
//! println!("CLOUDFLARE_API_BASE_URL={}", running.api_base_url());
//! running.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod accounts;
mod call;
mod claim;
pub mod clock;
pub mod config;
pub mod envelope;
pub mod events;
mod internal;
mod multipart;
pub mod platform;
pub mod pow;
mod provisioning;
mod resources;
mod server;
pub mod sweeper;
mod workers;

pub use accounts::{AccountSnapshot, AccountStatus, ResourceCounts};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{PlatformConfig, PlatformLimits};
pub use events::{EventType, EventsConfig, PlatformEvent, SIGNATURE_HEADER};
pub use platform::{ClaimError, Platform, ProvisionedAccount, RequestRecord};
pub use provisioning::CODE_TERMS_NOT_ACCEPTED;
pub use server::{spawn, RunningPlatform};
pub use sweeper::{CleanupReason, CleanupRecord};
