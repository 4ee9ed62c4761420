//! The `[budgets]` of the policy the gateway enforces: what a source key
//! may owe before the gateway acts.

use std::path::Path;

use serde::Serialize;

/// One `[[budgets.limit]]` of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// Key kind: `ip`, `ipv4/24`, `ipv4/16`, `ipv6/64`, `ipv6/56`, `ipv6/48`,
    /// `ipv6/32`, ..., or `global` for a `[[budgets.global]]` (the platform's total).
    pub kind: String,
    /// Units of debt at which it applies.
    pub units: u64,
    /// `refuse` or `harder_pow`.
    pub action: String,
}

/// The `[budgets]` of a policy file.
pub fn budgets_from_policy(path: &Path) -> Result<Vec<Budget>, String> {
    let compiled = policy::compile_file(path)
        .map_err(|e| format!("cannot read budgets from {}:\n{e}", path.display()))?;
    let action = |a: policy::ledger::BudgetAction| match a {
        policy::ledger::BudgetAction::Refuse => "refuse".to_string(),
        policy::ledger::BudgetAction::HarderPow => "harder_pow".to_string(),
    };
    let budgets = compiled.budgets();
    let keyed = budgets.rules.iter().map(|r| Budget {
        kind: r.kind.to_string(),
        units: r.units,
        action: action(r.action),
    });
    // `[[budgets.global]]`: the platform's total, kind `global`.
    let global = budgets.global.iter().map(|g| Budget {
        kind: super::GLOBAL_KEY.to_string(),
        units: g.units,
        action: action(g.action),
    });
    Ok(keyed.chain(global).collect())
}

/// The smallest budget of `kind` with `action`, if the policy has one.
pub(super) fn threshold(budgets: &[Budget], kind: &str, action: &str) -> Option<u64> {
    budgets.iter().filter(|b| b.kind == kind && b.action == action).map(|b| b.units).min()
}
