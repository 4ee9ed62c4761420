//! `[costs]` -> [`Costs`] and `[budgets]` -> [`Budgets`].

use crate::economics::ledger::{BudgetAction, BudgetRule, Budgets, Costs, GlobalBudget};
use crate::lang::error::{did_you_mean, one_of};
use crate::lang::raw::economics::{RawBudgets, RawCosts};
use crate::lang::section::{non_negative, positive, SectionError};
use serde_spanned::Spanned;

/// Validates `[costs]`.
pub(crate) fn compile_costs(raw: &RawCosts) -> Result<Costs, Vec<SectionError>> {
    let d = Costs::default();
    let mut e = Vec::new();
    let costs = Costs {
        account: non_negative(&raw.account, "account", d.account, &mut e),
        worker_script: non_negative(&raw.worker_script, "worker_script", d.worker_script, &mut e),
        kv_namespace: non_negative(&raw.kv_namespace, "kv_namespace", d.kv_namespace, &mut e),
        d1_database: non_negative(&raw.d1_database, "d1_database", d.d1_database, &mut e),
        queue: non_negative(&raw.queue, "queue", d.queue, &mut e),
        hyperdrive_config: non_negative(
            &raw.hyperdrive_config,
            "hyperdrive_config",
            d.hyperdrive_config,
            &mut e,
        ),
        asset_file: non_negative(&raw.asset_file, "asset_file", d.asset_file, &mut e),
        per_mb_stored: non_negative(&raw.per_mb_stored, "per_mb_stored", d.per_mb_stored, &mut e),
        claim_credit: non_negative(&raw.claim_credit, "claim_credit", d.claim_credit, &mut e),
    };
    if e.is_empty() {
        Ok(costs)
    } else {
        Err(e)
    }
}

/// Validates `[budgets]`.
pub(crate) fn compile_budgets(raw: &RawBudgets) -> Result<Budgets, Vec<SectionError>> {
    let mut e = Vec::new();
    let window_secs = positive(&raw.window_secs, "window_secs", 86_400, &mut e);
    let mut global = Vec::new();
    for g in raw.global.iter().flatten() {
        let units = non_negative(&Some(g.units.clone()), "units", 0, &mut e);
        if units == 0 {
            e.push(SectionError::at(&g.units, "a global budget of 0 units would apply to every request; remove it or give it units above 0".to_string()));
        }
        let window = positive(&g.window_secs, "window_secs", window_secs, &mut e);
        let action = match &g.action {
            None => Some(BudgetAction::HarderPow),
            Some(a) => parse_action(a, &mut e),
        };
        if let Some(action) = action {
            global.push(GlobalBudget { units, window_secs: window, action });
        }
    }
    let Some(limits) = &raw.limit else {
        let rules =
            Budgets::default().rules.into_iter().map(|r| BudgetRule { window_secs, ..r }).collect();
        return if e.is_empty() { Ok(Budgets { window_secs, rules, global }) } else { Err(e) };
    };
    let mut rules = Vec::new();
    for l in limits {
        let kind = super::accounts::source_kind(&l.key).map_err(|err| e.push(err)).ok();
        let units = non_negative(&Some(l.units.clone()), "units", 0, &mut e);
        let window = positive(&l.window_secs, "window_secs", window_secs, &mut e);
        let action = match &l.action {
            None => Some(BudgetAction::Refuse),
            Some(a) => parse_action(a, &mut e),
        };
        if let (Some(kind), Some(action)) = (kind, action) {
            rules.push((BudgetRule { kind, units, window_secs: window, action }, &l.units));
        }
    }
    // A refusal wins over harder proof-of-work, so a `harder_pow` budget at or above a
    // `refuse` budget of the same key and window never takes effect: almost certainly
    // the two numbers were swapped.
    for (soft, at) in rules.iter().filter(|(r, _)| r.action == BudgetAction::HarderPow) {
        let hard = rules.iter().map(|(r, _)| r).find(|r| {
            r.action == BudgetAction::Refuse
                && r.kind == soft.kind
                && r.window_secs == soft.window_secs
                && r.units <= soft.units
        });
        if let Some(hard) = hard {
            e.push(SectionError::at(
                at,
                format!(
                    "harder_pow budget of {} units for \"{}\" is not below the refuse budget of {} units for the same key and window, so it would never apply; make harder_pow the smaller number",
                    soft.units, soft.kind, hard.units
                ),
            ));
        }
    }
    let rules = rules.into_iter().map(|(r, _)| r).collect();
    if e.is_empty() {
        Ok(Budgets { window_secs, rules, global })
    } else {
        Err(e)
    }
}

/// Reads a budget action, recording an error (with a suggestion) for an unknown one.
fn parse_action(a: &Spanned<String>, e: &mut Vec<SectionError>) -> Option<BudgetAction> {
    match a.get_ref().as_str() {
        "refuse" => Some(BudgetAction::Refuse),
        "harder_pow" => Some(BudgetAction::HarderPow),
        other => {
            let names = ["refuse", "harder_pow"];
            e.push(SectionError::at(
                a,
                format!(
                    "unknown budget action \"{other}\", expected one of {}{}",
                    one_of(names),
                    did_you_mean(other, names)
                ),
            ));
            None
        }
    }
}
