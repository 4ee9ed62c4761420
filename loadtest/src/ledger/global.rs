//! The platform's total unclaimed cleanup against the policy's global budget.
//!
//! Every entry of the run counts, from every group (the gateway's global budget sums
//! all sources). The line is the smallest global `refuse` budget; a policy whose
//! global budgets only ask for harder proof-of-work (`rules/default.toml`) draws its
//! line there instead: past it the gateway only slows a swarm down, so a total that
//! keeps growing past it is exactly the cleanup the policy meant to stop, and the
//! check fails. As for a key, accounts created before the total reached the line and
//! charged after it are in flight and allowed.

use std::collections::HashMap;

use super::budgets::{threshold, Budget};
use super::{judge, Entry, KeyCheck};

/// The key name of the platform's total, as the gateway's ledger names a breach of
/// `[[budgets.global]]`.
pub const GLOBAL_KEY: &str = "global";

/// Judges the total over `entries` against the global budget, if the policy has one.
pub fn check_global(
    entries: &[&Entry],
    budgets: &[Budget],
    created: &HashMap<&str, u64>,
    run_start_unix: u64,
) -> Option<KeyCheck> {
    let harder_pow_at = threshold(budgets, GLOBAL_KEY, "harder_pow");
    let line = threshold(budgets, GLOBAL_KEY, "refuse").or(harder_pow_at)?;
    Some(judge(GLOBAL_KEY, entries.to_vec(), line, harder_pow_at, created, run_start_unix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{analyse, Reason};
    use crate::stats::AccountRecord;

    /// A swarm: every account from its own address and /24, 15 units each, one
    /// every 10 s, each charged 50 s after its creation.
    fn swarm(n: u64) -> (Vec<Entry>, Vec<AccountRecord>) {
        let entries = (0..n)
            .map(|i| Entry {
                at: 10 * i + 50,
                account_id: format!("s{i}"),
                source_keys: vec![
                    format!("ip:10.{}.{}.1", i / 256, i % 256),
                    format!("ipv4/24:10.{}.{}.0/24", i / 256, i % 256),
                ],
                reason: Reason::ExpiredUnclaimed,
                units: 15,
            })
            .collect();
        let accounts = (0..n)
            .map(|i| AccountRecord { id: format!("s{i}"), created_unix: 10 * i, claimed: false })
            .collect();
        (entries, accounts)
    }

    fn budgets(global_action: &str) -> Vec<Budget> {
        vec![
            Budget { kind: "ip".into(), units: 150, action: "refuse".into() },
            Budget { kind: "ipv4/24".into(), units: 400, action: "refuse".into() },
            Budget { kind: GLOBAL_KEY.into(), units: 1500, action: global_action.into() },
        ]
    }

    #[test]
    fn a_swarm_spread_thin_passes_every_key_but_not_the_total() {
        // 200 accounts, 3000 units: 15 per key, twice the global 1500.
        let (entries, accounts) = swarm(200);
        for action in ["refuse", "harder_pow"] {
            let out = analyse(&entries, std::slice::from_ref(&accounts), Some(&budgets(action)), 0);
            assert_eq!(out[0].keys_over, 0, "every key is far within its budget");
            assert_eq!(out[0].within_budget, Some(true));
            let g = out[0].global.clone().expect("a global budget");
            assert_eq!((g.debt, g.refuse_at), (3000, 1500));
            // The line is reached at the 100th charge (t=1040); the accounts
            // created up to then are in flight, the 95 created later are over.
            assert_eq!(g.tripped_after_secs, Some(1040), "{action}");
            assert!(!g.within, "{action}: {g:?}");
        }
    }

    #[test]
    fn a_total_below_the_line_or_no_global_budget() {
        let (entries, accounts) = swarm(50);
        let out = analyse(&entries, std::slice::from_ref(&accounts), Some(&budgets("refuse")), 0);
        let g = out[0].global.clone().expect("a global budget");
        assert!(g.within && g.tripped_after_secs.is_none(), "{g:?}");
        let keyed: Vec<Budget> = budgets("refuse").into_iter().take(2).collect();
        let out = analyse(&entries, std::slice::from_ref(&accounts), Some(&keyed), 0);
        assert_eq!(out[0].global, None);
    }

    #[test]
    fn accounts_in_flight_when_the_total_reaches_the_line_are_allowed() {
        // All 200 accounts created before the total reaches the line: all in flight.
        let (entries, mut accounts) = swarm(200);
        for a in &mut accounts {
            a.created_unix = 150;
        }
        let out = analyse(&entries, std::slice::from_ref(&accounts), Some(&budgets("refuse")), 0);
        let g = out[0].global.clone().expect("a global budget");
        assert!(g.within, "{g:?}");
    }
}
