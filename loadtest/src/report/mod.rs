//! The run's results: a table for people, JSON for machines, and the
//! acceptance lines.
//!
//! Cleanup cost comes from the gateway's ledger when the tester can read it
//! (spawned gateway, or a URL target with `admin_url`): see [`crate::ledger`]
//! for how units are attributed to groups and what "within budget" means.
//! Without a ledger it falls back to a client-side estimate (accounts
//! created minus claimed, times `cleanup_cost_per_account`), and the report
//! says so in `cleanup_cost_basis`.
//!
//! This module holds the report's shape and how it is assembled; the
//! per-group figures, the acceptance lines and the printed table each have
//! a submodule.

use std::time::Duration;

use serde::Serialize;

use crate::ledger::{Budget, GroupCleanup};
use crate::scenario::Scenario;
use crate::stats::RunStats;

mod acceptance;
pub mod attacks;
mod group;
mod table;

pub use group::{GroupReport, Latency};

/// Cleanup cost basis without a ledger.
pub const CLEANUP_COST_BASIS: &str = "estimated client-side: (accounts created - accounts claimed) x cleanup_cost_per_account; no gateway ledger was read";
/// Cleanup cost basis with the gateway's ledger.
pub const LEDGER_BASIS: &str = "gateway ledger (GET /ledger/entries): units the gateway charged for accounts that expired unclaimed, attributed to groups by account id";
/// Share of their deploys well-behaved agents must complete.
pub const WELL_BEHAVED_MIN_PCT: f64 = 99.0;

/// Totals over all groups.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Requests sent.
    pub requests: u64,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused.
    pub refused: u64,
    /// Requests failed.
    pub errors: u64,
    /// Requests per second achieved over the run.
    pub requests_per_sec: f64,
    /// Deploys completed.
    pub deploys_completed: u64,
    /// Deploy runs attempted.
    pub deploys_attempted: u64,
    /// Deploys wanted.
    pub deploys_wanted: u64,
    /// Accounts created.
    pub accounts_created: u64,
    /// Accounts claimed.
    pub accounts_claimed: u64,
    /// Client-side latency of all requests through the target (loopback:
    /// the gateway, plus the platform for admitted requests).
    pub latency: Latency,
    /// Latency of refused requests, which the gateway answers alone.
    pub latency_refused: Latency,
    /// Cleanup units over all groups.
    pub cleanup_units: f64,
}

/// One acceptance line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    /// `PASS`, `FAIL`, `SKIP` (cannot be judged: no ledger) or `INFO`.
    pub status: String,
    /// What is checked.
    pub name: String,
    /// The numbers.
    pub detail: String,
}

/// What the ledger read at the end said.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LedgerInfo {
    /// Where it was read (admin listener).
    pub admin_url: Option<String>,
    /// Entries read.
    pub entries: usize,
    /// Entries skipped as malformed.
    pub skipped: usize,
    /// Why the ledger could not be used, if it could not.
    pub error: Option<String>,
    /// Seconds spent waiting at the end for the last expiries to be charged.
    pub settle_secs: f64,
    /// The policy's budgets used for the checks.
    pub budgets: Vec<Budget>,
    /// The gateway's `GET /stats` at the end (rule counters), if read.
    pub gateway_stats: Option<serde_json::Value>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// What was tested.
    pub target: String,
    /// `--scale` applied.
    pub scale: f64,
    /// Duration limit used.
    pub duration_limit_secs: f64,
    /// Wall-clock time the run took.
    pub elapsed_secs: f64,
    /// Why the run ended.
    pub stopped_by: String,
    /// Cost per unclaimed account (scenario).
    pub cleanup_cost_per_account: f64,
    /// Where cleanup cost figures come from.
    pub cleanup_cost_basis: String,
    /// Totals.
    pub totals: Totals,
    /// Per group.
    pub groups: Vec<GroupReport>,
    /// The ledger read at the end, if any.
    pub ledger: Option<LedgerInfo>,
    /// Acceptance lines (see [`Report::evaluate`]).
    pub acceptance: Vec<Check>,
    /// What the attack checks judge by, gathered at the end of the run.
    pub attacks: Option<crate::attack::facts::AttackFacts>,
}

impl Report {
    /// Assemble the report from a run's counters.
    pub fn build(
        scenario: &Scenario,
        run: &RunStats,
        elapsed: Duration,
        duration_limit_secs: f64,
        scale: f64,
        target: String,
        stopped_by: String,
    ) -> Self {
        let groups: Vec<GroupReport> = run
            .groups
            .iter()
            .map(|g| GroupReport::from(g, scenario.cleanup_cost_per_account))
            .collect();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let requests = groups.iter().map(|g| g.requests).sum::<u64>();
        let totals = Totals {
            requests,
            admitted: groups.iter().map(|g| g.admitted).sum(),
            refused: groups.iter().map(|g| g.refused).sum(),
            errors: groups.iter().map(|g| g.errors).sum(),
            requests_per_sec: requests as f64 / secs,
            deploys_completed: groups.iter().map(|g| g.deploys_completed).sum(),
            deploys_attempted: groups.iter().map(|g| g.deploys_attempted).sum(),
            deploys_wanted: groups.iter().map(|g| g.deploys_wanted).sum(),
            accounts_created: groups.iter().map(|g| g.accounts_created).sum(),
            accounts_claimed: groups.iter().map(|g| g.accounts_claimed).sum(),
            latency: Latency::from(&run.latency()),
            latency_refused: Latency::from(&run.refused_latency()),
            cleanup_units: groups.iter().map(|g| g.cleanup.cleanup_units).sum(),
        };
        Self {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            target,
            scale,
            duration_limit_secs,
            elapsed_secs: elapsed.as_secs_f64(),
            stopped_by,
            cleanup_cost_per_account: scenario.cleanup_cost_per_account,
            cleanup_cost_basis: CLEANUP_COST_BASIS.to_string(),
            totals,
            groups,
            ledger: None,
            acceptance: Vec::new(),
            attacks: None,
        }
    }

    /// Replace the estimate with the ledger's figures (one per group, in
    /// group order).
    pub fn apply_ledger(&mut self, cleanup: Vec<GroupCleanup>, info: LedgerInfo) {
        if cleanup.len() == self.groups.len() {
            for (g, c) in self.groups.iter_mut().zip(cleanup) {
                g.cleanup = c;
            }
            self.cleanup_cost_basis = LEDGER_BASIS.to_string();
            self.totals.cleanup_units = self.groups.iter().map(|g| g.cleanup.cleanup_units).sum();
        }
        self.ledger = Some(info);
    }
}
