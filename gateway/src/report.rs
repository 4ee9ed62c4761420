//! Answers to "who left us the most cleanup, and what did we do about it?", shared by
//! the `gateway ledger` command (reading a ledger file) and the admin API (reading the
//! running gateway's ledger).

use policy::accounts::SourceKey;
use policy::ledger::{BudgetAction, Budgets, Ledger};
use serde::Serialize;

/// One line of the top-sources table.
#[derive(Debug, Clone, Serialize)]
pub struct TopSource {
    /// The source key (`ip:…`, `ipv6/48:…`, `http_fp:…`).
    pub key: String,
    /// Net units charged in the period (charges minus claim credit).
    pub units: i64,
    /// Accounts behind those units.
    pub accounts: usize,
    /// Debt now, over the budget's window.
    pub debt_now: u64,
    /// What the gateway does to this key's new provisioning now: `none`,
    /// `harder_pow` or `refuse`.
    pub action: &'static str,
}

/// One hour of the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct HourTotal {
    /// Start of the hour, unix seconds.
    pub hour_start: u64,
    /// Net units.
    pub units: i64,
    /// Accounts.
    pub accounts: usize,
}

/// The top `n` sources by cleanup cost since `since`, with the action in force now.
pub fn top_sources(
    ledger: &Ledger,
    budgets: &Budgets,
    n: usize,
    since: u64,
    now: u64,
) -> Vec<TopSource> {
    ledger
        .top_sources(n, since)
        .into_iter()
        .map(|(key, units, accounts)| {
            let (debt_now, action) = action_for(ledger, budgets, &key, now);
            TopSource { key: key.to_string(), units, accounts, debt_now, action }
        })
        .collect()
}

/// The strongest budget action that applies to `key` now, and its debt.
pub fn action_for(
    ledger: &Ledger,
    budgets: &Budgets,
    key: &SourceKey,
    now: u64,
) -> (u64, &'static str) {
    let mut debt_now = 0;
    let mut action = "none";
    for rule in budgets.rules.iter().filter(|r| Some(r.kind) == key.kind()) {
        let debt = ledger.debt(key, now, rule.window_secs);
        debt_now = debt_now.max(debt);
        if debt > 0 && debt >= rule.units {
            action = match (action, rule.action) {
                (_, BudgetAction::Refuse) | ("refuse", _) => "refuse",
                _ => "harder_pow",
            };
        }
    }
    (debt_now, action)
}

/// Totals per hour between `since` and `until`.
pub fn hourly(ledger: &Ledger, since: u64, until: u64) -> Vec<HourTotal> {
    ledger
        .totals_per_hour(since, until)
        .into_iter()
        .map(|(hour_start, units, accounts)| HourTotal { hour_start, units, accounts })
        .collect()
}

/// The top-sources table as text.
pub fn format_top(rows: &[TopSource]) -> String {
    let mut out = format!(
        "{:<48} {:>8} {:>9} {:>9}  {}\n",
        "source", "units", "accounts", "debt now", "action now"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<48} {:>8} {:>9} {:>9}  {}\n",
            r.key, r.units, r.accounts, r.debt_now, r.action
        ));
    }
    if rows.is_empty() {
        out.push_str("(no cleanup charged in this period)\n");
    }
    out
}

/// The hourly table as text.
pub fn format_hourly(rows: &[HourTotal]) -> String {
    let mut out = format!("{:<22} {:>8} {:>9}\n", "hour (UTC)", "units", "accounts");
    for r in rows {
        let hour = time::OffsetDateTime::from_unix_timestamp(r.hour_start as i64)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| r.hour_start.to_string());
        out.push_str(&format!("{:<22} {:>8} {:>9}\n", hour, r.units, r.accounts));
    }
    out
}
