//! Policy language, compiler and decision engine for the temporary-deploy gateway.
//!
//! Pure logic: no sockets, no Pingora. The gateway builds a [`Request`] from borrowed
//! parts, calls [`Engine::decide`], and writes back the [`Decision`]'s status, message
//! and [`Decision::ratelimit_headers`]. The language is described in `README.md`; the
//! HTTP fingerprint in `FINGERPRINT.md`.
//!
//! The crate has two halves and a contract:
//! - the policy language and rate-limit engine (crate-private `lang`, re-exported
//!   here: [`compile_str`], [`Engine`], [`Request`], ...). Every section of a policy
//!   file, rules and economics alike, goes raw -> compile -> model with
//!   `FILE:LINE:COL` errors;
//! - [`economics`]: temporary accounts, what they hold, what their cleanup costs and
//!   the proof-of-work a source in debt owes ([`accounts`], [`quota`], [`ledger`],
//!   [`pow`]), configured by the policy's `[accounts]`, `[quotas]`, `[costs]`,
//!   `[budgets]` and `[pow]`;
//! - [`platform`]: everything assumed about the deploy API's paths, bodies and
//!   answers, so another platform means reading one module.
//!
//! ```
//! use policy::{compile_str, Engine, Request};
//! let policy = compile_str("p.toml", r#"
//! version = 1
//! [[rule]]
//! name = "create"
//! match = { route = "provision-create" }
//! action = "limit"
//! limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
//! "#).unwrap();
//! let engine = Engine::new(policy);
//! let req = Request { method: "POST", path: "/client/v4/provisioning/previews",
//!     peer: "192.0.2.1".parse().unwrap(), http_version: "HTTP/1.1", headers: &[],
//!     tls_fp: None, account: None };
//! assert!(engine.decide(&req).is_allowed());
//! assert_eq!(engine.decide(&req).status(), Some(429));
//! ```
#![deny(missing_docs)]

pub mod economics;
pub mod ja4;
pub(crate) mod lang;
pub mod platform;
mod wire;

pub use economics::{accounts, ledger, pow, quota};
pub use lang::canonical::normalised_path;
pub use lang::client::ClientConfig;
pub use lang::compile::{compile_file, compile_str, DEFAULT_MAX_KEYS, DEFAULT_SWEEP_SECS};
pub use lang::decision::{Decision, Outcome, QuotaInfo, Request};
pub use lang::engine::{Engine, ReloadReport, RuleStats, Stats, TableStats};
pub use lang::error::{PolicyError, PolicyErrors};
pub use lang::explain::{Explanation, LimitTrace, RuleTrace};
pub use lang::fair_share::{FairShareState, FairShareStats, FairVerdict};
pub use lang::fingerprint::http_fingerprint;
pub use lang::identity::Identity;
pub use lang::key::{KeyPart, KeySpec, Missing};
pub use lang::model::{Action, OnStoreError, Policy};
pub use lang::plan::{Plan, PlannedLimit, Verdict};
pub use lang::rate::{Per, Rate};
pub use lang::route::RouteClass;
pub use lang::snapshot::{LimitSnapshot, LimitState, RestoreReport};

/// Re-exported so callers and tests name the same clock types.
pub use governor::clock;
