//! Policy language, compiler and decision engine for the temporary-deploy gateway.
//!
//! Pure logic: no sockets, no Pingora. The gateway builds a [`Request`] from borrowed
//! parts, calls [`Engine::decide`], and writes back the [`Decision`]'s status, message
//! and [`Decision::ratelimit_headers`]. The language is described in `README.md`; the
//! HTTP fingerprint in `FINGERPRINT.md`.
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

mod client;
mod compile;
mod decision;
mod engine;
mod error;
mod explain;
mod fingerprint;
mod identity;
pub mod ja4;
mod key;
mod model;
mod rate;
mod raw;
mod route;
mod table;

pub use client::ClientConfig;
pub use compile::{compile_file, compile_str, DEFAULT_MAX_KEYS, DEFAULT_SWEEP_SECS};
pub use decision::{Decision, Outcome, QuotaInfo, Request};
pub use engine::{Engine, ReloadReport, RuleStats, Stats, TableStats};
pub use error::{PolicyError, PolicyErrors};
pub use explain::{Explanation, LimitTrace, RuleTrace};
pub use fingerprint::http_fingerprint;
pub use identity::Identity;
pub use key::{KeyPart, KeySpec, Missing};
pub use model::{Action, Policy};
pub use rate::{Per, Rate};
pub use route::RouteClass;

/// Re-exported so callers and tests name the same clock types.
pub use governor::clock;

// Temporary accounts: who created them, what they hold, what their cleanup costs, and
// the proof-of-work a source in debt owes. Pure logic like the rest: time comes in as
// unix seconds, so tests move it by hand.
pub mod accounts;
pub mod ledger;
pub mod pow;
pub mod quota;
pub mod section;
