//! The models of `[costs]` (what an unclaimed account costs) and `[budgets]` (how
//! much of that a source may run up).

use crate::economics::accounts::SourceKind;
use crate::economics::quota::ResourceCounts;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------
// [costs]
// ---------------------------------------------------------------------------------------

/// Compiled cleanup costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Costs {
    /// Per unclaimed account.
    pub account: u64,
    /// Per Worker script.
    pub worker_script: u64,
    /// Per KV namespace.
    pub kv_namespace: u64,
    /// Per D1 database.
    pub d1_database: u64,
    /// Per Queue.
    pub queue: u64,
    /// Per Hyperdrive configuration.
    pub hyperdrive_config: u64,
    /// Per static-asset file.
    pub asset_file: u64,
    /// Per MB stored (rounded up).
    pub per_mb_stored: u64,
    /// Credit per claimed account.
    pub claim_credit: u64,
}

impl Default for Costs {
    /// Relative weights: deleting the account itself is the fixed part; stateful
    /// resources (D1, scripts with routes) cost more to tear down than queue or
    /// Hyperdrive records; storage is charged per MB. A claim is worth about two
    /// typical unclaimed deploys, so an honest user who claims now and then never
    /// approaches a budget.
    fn default() -> Self {
        Costs {
            account: 10,
            worker_script: 5,
            kv_namespace: 3,
            d1_database: 5,
            queue: 2,
            hyperdrive_config: 2,
            asset_file: 0,
            per_mb_stored: 1,
            claim_credit: 20,
        }
    }
}

impl Costs {
    /// Cleanup cost of an unclaimed account holding `r`.
    pub fn cleanup_cost(&self, r: &ResourceCounts) -> u64 {
        let mb = r.stored_bytes.div_ceil(1_000_000);
        [
            (1, self.account),
            (r.worker_scripts, self.worker_script),
            (r.kv_namespaces, self.kv_namespace),
            (r.d1_databases, self.d1_database),
            (r.queues, self.queue),
            (r.hyperdrive_configs, self.hyperdrive_config),
            (r.asset_files, self.asset_file),
            (mb, self.per_mb_stored),
        ]
        .into_iter()
        .fold(0u64, |acc, (n, unit)| acc.saturating_add(n.saturating_mul(unit)))
    }
}

// ---------------------------------------------------------------------------------------
// [budgets]
// ---------------------------------------------------------------------------------------

/// What happens to a source whose unclaimed-cleanup debt reached a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetAction {
    /// Answer challenges with more proof-of-work (see `pow`): slows a farm down and
    /// costs an honest user a few seconds.
    HarderPow,
    /// Refuse new temporary accounts until enough debt leaves the window.
    Refuse,
}

/// A compiled platform-wide budget.
///
/// A swarm that takes a fresh /24 and a fresh fingerprint for every account leaves a
/// little debt on many keys and trips no per-key budget; the platform's total debt
/// still grows. Past a global budget every source gets harder proof-of-work (the
/// "under attack" posture), or, if the policy says so, provisioning stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalBudget {
    /// Debt at which it applies.
    pub units: u64,
    /// Window the debt is summed over, seconds.
    pub window_secs: u64,
    /// What happens.
    pub action: BudgetAction,
}

/// One compiled budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRule {
    /// Which key of a source it counts by.
    pub kind: SourceKind,
    /// Debt at which it applies.
    pub units: u64,
    /// Window the debt is summed over, seconds.
    pub window_secs: u64,
    /// What happens.
    pub action: BudgetAction,
}

/// Compiled budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budgets {
    /// Default window, seconds.
    pub window_secs: u64,
    /// The rules, as written.
    pub rules: Vec<BudgetRule>,
    /// Platform-wide budgets (none by default).
    pub global: Vec<GlobalBudget>,
}

impl Default for Budgets {
    /// Per day: an unclaimed deploy of one script costs about 15 units with the default
    /// costs, so an address or /64 gets harder proof-of-work after about 4 abandoned
    /// accounts and is refused after about 10; networks get proportionally more room
    /// (offices, carrier NAT). Fingerprints have no default budget: they are shared by
    /// every honest user of the same wrangler build.
    fn default() -> Self {
        let day = 86_400;
        let r = |kind, units, action| BudgetRule { kind, units, window_secs: day, action };
        use BudgetAction::*;
        use SourceKind::*;
        Budgets {
            window_secs: day,
            global: Vec::new(),
            rules: vec![
                r(Ip, 60, HarderPow),
                r(Ip, 150, Refuse),
                r(Ipv6_64, 60, HarderPow),
                r(Ipv6_64, 150, Refuse),
                r(Ipv4_24, 150, HarderPow),
                r(Ipv4_24, 400, Refuse),
                r(Ipv6_56, 150, HarderPow),
                r(Ipv6_56, 400, Refuse),
                r(Ipv6_48, 300, HarderPow),
                r(Ipv6_48, 800, Refuse),
            ],
        }
    }
}
