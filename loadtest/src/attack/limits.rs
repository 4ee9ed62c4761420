//! What the policy the gateway enforces allows, as far as the attack
//! checks need it: account limits per source kind, per-account quotas, and
//! the global cleanup budgets. Read from the compiled policy, so a kind the
//! compiler knows (`ipv4/16` once the gateway has it) is found by its name.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// Per-account quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quotas {
    /// Worker scripts.
    pub max_worker_scripts: u64,
    /// KV namespaces.
    pub max_kv_namespaces: u64,
    /// D1 databases.
    pub max_d1_databases: u64,
    /// Queues.
    pub max_queues: u64,
    /// Static-asset files.
    pub max_asset_files: u64,
    /// Bytes of one static-asset file.
    pub max_asset_file_bytes: u64,
    /// Bytes of one request body.
    pub max_body_bytes: u64,
}

/// One `[[budgets.global]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GlobalBudget {
    /// Units over its window.
    pub units: u64,
    /// Window, seconds.
    pub window_secs: u64,
    /// `refuse` or `harder_pow`.
    pub action: String,
}

/// The parts of a policy the attack checks judge by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyLimits {
    /// `[accounts]` window, seconds.
    pub window_secs: u64,
    /// `[accounts.live]` by key kind (`ip`, `ipv4/24`, `ipv4/16`, ...).
    pub live: BTreeMap<String, u64>,
    /// `[accounts.per_day]` by key kind.
    pub per_day: BTreeMap<String, u64>,
    /// `[quotas]`.
    pub quotas: Quotas,
    /// `[[budgets.global]]`.
    pub global: Vec<GlobalBudget>,
}

impl PolicyLimits {
    /// Read them from a policy file.
    pub fn from_policy(path: &Path) -> Result<Self, String> {
        let p = policy::compile_file(path)
            .map_err(|e| format!("cannot read limits from {}:\n{e}", path.display()))?;
        let a = p.account_limits();
        let by_name = |m: &BTreeMap<_, u64>| m.iter().map(|(k, v)| (format!("{k}"), *v)).collect();
        let q = p.quotas();
        Ok(Self {
            window_secs: a.window_secs,
            live: by_name(&a.live),
            per_day: by_name(&a.per_day),
            quotas: Quotas {
                max_worker_scripts: q.max_worker_scripts,
                max_kv_namespaces: q.max_kv_namespaces,
                max_d1_databases: q.max_d1_databases,
                max_queues: q.max_queues,
                max_asset_files: q.max_asset_files,
                max_asset_file_bytes: q.max_asset_file_bytes,
                max_body_bytes: q.max_body_bytes,
            },
            global: p
                .budgets()
                .global
                .iter()
                .map(|g| GlobalBudget {
                    units: g.units,
                    window_secs: g.window_secs,
                    action: match g.action {
                        policy::ledger::BudgetAction::Refuse => "refuse".into(),
                        policy::ledger::BudgetAction::HarderPow => "harder_pow".into(),
                    },
                })
                .collect(),
        })
    }

    /// The global budget a run's total cleanup is judged by: the smallest
    /// `refuse` one, else the smallest of any action.
    pub fn global_budget(&self) -> Option<&GlobalBudget> {
        self.global
            .iter()
            .filter(|g| g.action == "refuse")
            .min_by_key(|g| g.units)
            .or_else(|| self.global.iter().min_by_key(|g| g.units))
    }
}
