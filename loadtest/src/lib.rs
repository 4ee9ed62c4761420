//! Swarm load tester for the temporary-deploy gateway.
//!
//! Simulates many unauthenticated agents running `wrangler deploy
//! --temporary` (proof of work, account creation, the deploy calls,
//! resources, claims) with different manners — well-behaved users, buggy
//! retry loops, address and fingerprint rotators, botnets, quota fillers —
//! and reports, per kind, how many got through, how many were refused, and
//! what the unclaimed accounts cost to clean up (from the gateway's ledger,
//! checked against the policy's budgets). Traffic only ever goes to
//! loopback.
#![deny(missing_docs)]

pub mod agent;
pub mod agent_ctx;
pub mod archetype;
pub mod attack;
pub mod chart;
pub mod ledger;
pub mod loopback;
pub mod pow;
pub mod progress;
pub mod protocol;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stats;
pub mod target;
pub mod wrangler;

pub use report::Report;
pub use runner::{run, RunOptions};
pub use scenario::{Scenario, ScenarioError};
