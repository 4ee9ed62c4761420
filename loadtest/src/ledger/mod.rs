//! The gateway's cleanup-cost ledger, read from its admin listener, and what
//! it says about each group of agents.
//!
//! The gateway charges every account that expires unclaimed to each source
//! key of its creator (`ip:…`, `ipv4/24:…`, `ipv6/64:…`, `ipv6/48:…`,
//! `http_fp:…`) and credits claims; `GET /ledger/entries` lists those
//! entries. The tester knows which accounts each group created, so it can
//! add up units per group by account id, and check every budgeted key the
//! group's accounts were charged to against the policy's `[budgets]`.
//!
//! **Within budget**, per source key K with refuse budget B (the smallest
//! `action = "refuse"` budget of K's kind): walk K's ledger entries (from
//! every group) in time order; K *trips* at the first entry that brings
//! its debt (net units, never below zero) to B or more. From then on the
//! gateway refuses K new accounts, but accounts K created before the trip
//! are still live and will be charged when they expire: their cost is
//! *in flight*. K is within budget when its final debt is at most its
//! debt just before the trip (less than B) plus the in-flight cost (the
//! entries charged at or after the trip, the tripping one included, of
//! accounts created at or before it): that is, when the gateway let K
//! create no account after K reached its budget. A key that never tripped
//! is within budget by definition (its debt stayed below B). A group is within budget when every budgeted key
//! its accounts were charged to is. The run is far shorter than the
//! budgets' window (a day by default), so every entry of the run counts.
//!
//! **The platform's total** is judged the same way against the policy's
//! `[[budgets.global]]` ([`global`]): a swarm that takes a fresh address,
//! network and fingerprint for every account leaves a little debt on
//! thousands of keys and is within every per-key budget, while the cleanup
//! the platform pays for still grows past what the policy allows in total.
//!
//! Reading the entries and the policy's budgets is done in submodules;
//! this module attributes them to groups and judges the keys.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::stats::AccountRecord;

mod budgets;
mod entries;
mod global;

use budgets::threshold;
pub use budgets::{budgets_from_policy, Budget};
pub use entries::{fetch_entries, fetch_stats, key_kind, parse_entries, Entry, Reason};
pub use global::{check_global, GLOBAL_KEY};

/// One budgeted source key, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyCheck {
    /// The key.
    pub key: String,
    /// Its debt at the end (net units over every group's entries, never
    /// below zero).
    pub debt: u64,
    /// Debt at which it gets harder proof-of-work, if budgeted.
    pub harder_pow_at: Option<u64>,
    /// Debt at which it is refused new accounts.
    pub refuse_at: u64,
    /// Seconds after the run's start when it reached the refuse budget.
    pub tripped_after_secs: Option<u64>,
    /// Cost of accounts created before the trip and charged after it.
    pub in_flight_units: u64,
    /// What the key may reach: its refuse budget if it never tripped, else
    /// its debt just before the trip (below the budget) plus the in-flight
    /// cost.
    pub allowed: u64,
    /// `debt <= allowed`.
    pub within: bool,
    /// Accounts charged to it.
    pub accounts: u64,
}

/// Cleanup cost of one group, from the ledger or estimated.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupCleanup {
    /// `ledger` (the gateway's entries) or `estimate`.
    pub basis: String,
    /// Accounts the group created.
    pub accounts_created: u64,
    /// Accounts claimed (ledger: with a claim entry).
    pub accounts_claimed: u64,
    /// Accounts charged as expired unclaimed.
    pub accounts_expired_unclaimed: u64,
    /// Accounts with no entry yet (still live when the ledger was read).
    pub accounts_unsettled: u64,
    /// Units charged for expired unclaimed accounts (or the estimate).
    pub cleanup_units: f64,
    /// Units credited for claims (zero or negative).
    pub claim_credit_units: i64,
    /// Budgeted keys the group's accounts were charged to.
    pub keys: u64,
    /// Keys that reached a harder-proof-of-work budget.
    pub keys_harder_pow: u64,
    /// Keys that reached a refuse budget.
    pub keys_refused: u64,
    /// Keys above their allowance.
    pub keys_over: u64,
    /// The key closest to (or furthest over) its refuse budget.
    pub worst_key: Option<KeyCheck>,
    /// Every budgeted key within budget; `None` without a ledger or budgets.
    pub within_budget: Option<bool>,
    /// The platform's total over every group's entries against the global
    /// budget (the same for every group; `None` without one).
    pub global: Option<KeyCheck>,
}

impl GroupCleanup {
    /// A client-side estimate: unclaimed accounts x cost per account.
    pub fn estimate(created: u64, claimed: u64, cost_per_account: f64) -> Self {
        Self {
            basis: "estimate".into(),
            accounts_created: created,
            accounts_claimed: claimed,
            accounts_unsettled: created.saturating_sub(claimed),
            cleanup_units: created.saturating_sub(claimed) as f64 * cost_per_account,
            ..Self::default()
        }
    }
}

/// Check one key against its refuse budget over `entries` (all of them;
/// only those naming the key count).
pub fn check_key(
    key: &str,
    entries: &[&Entry],
    budgets: &[Budget],
    created: &HashMap<&str, u64>,
    run_start_unix: u64,
) -> Option<KeyCheck> {
    let kind = key_kind(key);
    let refuse_at = threshold(budgets, kind, "refuse")?;
    let harder_pow_at = threshold(budgets, kind, "harder_pow");
    let mine: Vec<&Entry> =
        entries.iter().copied().filter(|e| e.source_keys.iter().any(|k| k == key)).collect();
    Some(judge(key, mine, refuse_at, harder_pow_at, created, run_start_unix))
}

/// Walks `mine` (the entries of one key, any order) in time order and judges
/// the key against `refuse_at`, as the module documentation describes.
pub(crate) fn judge(
    key: &str,
    mut mine: Vec<&Entry>,
    refuse_at: u64,
    harder_pow_at: Option<u64>,
    created: &HashMap<&str, u64>,
    run_start_unix: u64,
) -> KeyCheck {
    mine.sort_by_key(|e| e.at);
    let mut sum = 0i64;
    let mut trip: Option<(usize, u64)> = None;
    let mut debt_before_trip = 0u64;
    for (i, e) in mine.iter().enumerate() {
        let before = u64::try_from(sum).unwrap_or(0);
        sum = sum.saturating_add(e.units);
        let debt = u64::try_from(sum).unwrap_or(0);
        if trip.is_none() && debt > 0 && debt >= refuse_at {
            trip = Some((i, e.at));
            debt_before_trip = before;
        }
    }
    let debt = u64::try_from(sum).unwrap_or(0);
    let in_flight_units: u64 = match trip {
        None => 0,
        Some((i, at)) => mine[i..]
            .iter()
            .filter(|e| e.reason == Reason::ExpiredUnclaimed)
            .filter(|e| created.get(e.account_id.as_str()).is_some_and(|&c| c <= at))
            .map(|e| u64::try_from(e.units).unwrap_or(0))
            .sum(),
    };
    let allowed = match trip {
        None => refuse_at,
        Some(_) => debt_before_trip.saturating_add(in_flight_units),
    };
    let accounts: HashSet<&str> = mine.iter().map(|e| e.account_id.as_str()).collect();
    KeyCheck {
        key: key.to_string(),
        debt,
        harder_pow_at,
        refuse_at,
        tripped_after_secs: trip.map(|(_, at)| at.saturating_sub(run_start_unix)),
        in_flight_units,
        allowed,
        within: trip.is_none() || debt <= allowed,
        accounts: accounts.len() as u64,
    }
}

/// Cleanup per group from the ledger. `groups[i]` holds the accounts group
/// `i` created.
pub fn analyse(
    entries: &[Entry],
    groups: &[Vec<AccountRecord>],
    budgets: Option<&[Budget]>,
    run_start_unix: u64,
) -> Vec<GroupCleanup> {
    let mut created: HashMap<&str, u64> = HashMap::new();
    for g in groups {
        for a in g {
            created.insert(a.id.as_str(), a.created_unix);
        }
    }
    let mut by_account: HashMap<&str, Vec<&Entry>> = HashMap::new();
    for e in entries {
        by_account.entry(e.account_id.as_str()).or_default().push(e);
    }
    let all: Vec<&Entry> = entries.iter().collect();
    let global = budgets.and_then(|b| check_global(&all, b, &created, run_start_unix));
    let mut key_cache: BTreeMap<String, Option<KeyCheck>> = BTreeMap::new();
    groups
        .iter()
        .map(|accounts| {
            let mut c = GroupCleanup {
                basis: "ledger".into(),
                accounts_created: accounts.len() as u64,
                global: global.clone(),
                ..GroupCleanup::default()
            };
            let mut keys: HashSet<&str> = HashSet::new();
            let mut charged = 0i64;
            for a in accounts {
                let Some(es) = by_account.get(a.id.as_str()) else {
                    c.accounts_unsettled += 1;
                    continue;
                };
                let mut claimed = false;
                let mut expired = false;
                for e in es {
                    match e.reason {
                        Reason::ExpiredUnclaimed => {
                            expired = true;
                            charged = charged.saturating_add(e.units);
                        }
                        Reason::Claimed => {
                            claimed = true;
                            c.claim_credit_units = c.claim_credit_units.saturating_add(e.units);
                        }
                        Reason::Other => {}
                    }
                    keys.extend(e.source_keys.iter().map(String::as_str));
                }
                if claimed {
                    c.accounts_claimed += 1;
                } else if expired {
                    c.accounts_expired_unclaimed += 1;
                }
            }
            c.cleanup_units = charged as f64;
            if let Some(budgets) = budgets {
                let mut checks: Vec<KeyCheck> = Vec::new();
                for k in keys {
                    let check = key_cache
                        .entry(k.to_string())
                        .or_insert_with(|| check_key(k, &all, budgets, &created, run_start_unix));
                    if let Some(ch) = check {
                        checks.push(ch.clone());
                    }
                }
                c.keys = checks.len() as u64;
                c.keys_harder_pow = checks
                    .iter()
                    .filter(|k| k.harder_pow_at.is_some_and(|h| k.debt >= h && k.debt > 0))
                    .count() as u64;
                c.keys_refused =
                    checks.iter().filter(|k| k.tripped_after_secs.is_some()).count() as u64;
                c.keys_over = checks.iter().filter(|k| !k.within).count() as u64;
                c.within_budget = Some(c.keys_over == 0);
                // Worst: over its allowance first, then the highest debt
                // relative to the refuse budget; ties by key for stable output.
                c.worst_key = checks.into_iter().max_by(|a, b| {
                    let ra = a.debt as f64 / a.refuse_at.max(1) as f64;
                    let rb = b.debt as f64 / b.refuse_at.max(1) as f64;
                    (!a.within).cmp(&!b.within).then(ra.total_cmp(&rb)).then(b.key.cmp(&a.key))
                });
            }
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets() -> Vec<Budget> {
        vec![
            Budget { kind: "ip".into(), units: 60, action: "harder_pow".into() },
            Budget { kind: "ip".into(), units: 150, action: "refuse".into() },
        ]
    }

    fn entry(at: u64, id: &str, key: &str, reason: Reason, units: i64) -> Entry {
        Entry {
            at,
            account_id: id.into(),
            source_keys: vec![key.into(), "http_fp:x".into()],
            reason,
            units,
        }
    }

    fn rec(id: &str, at: u64) -> AccountRecord {
        AccountRecord { id: id.into(), created_unix: at, claimed: false }
    }

    #[test]
    fn parses_the_gateway_shape_and_skips_junk() {
        let body = br#"[{"at":5,"account_id":"a","source_keys":["ip:1.2.3.4","ipv4/24:1.2.3.0/24"],"reason":"expired_unclaimed","units":15,"resources":{}},
            {"at":6,"account_id":"b","source_keys":[],"reason":"claimed","units":-20},
            {"at":"x"}]"#;
        let (e, skipped) = parse_entries(body).expect("parses");
        assert_eq!(skipped, 1);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].reason, Reason::ExpiredUnclaimed);
        assert_eq!(e[1].units, -20);
        assert!(parse_entries(b"{}").is_err());
        assert_eq!(key_kind("ip:2001:db8::1"), "ip");
        assert_eq!(key_kind("ipv6/48:2001:db8::/48"), "ipv6/48");
    }

    #[test]
    fn units_and_accounts_are_attributed_by_account() {
        let entries = vec![
            entry(110, "a1", "ip:1.1.1.1", Reason::ExpiredUnclaimed, 15),
            entry(111, "a2", "ip:1.1.1.1", Reason::ExpiredUnclaimed, 15),
            entry(105, "w1", "ip:2.2.2.2", Reason::Claimed, -20),
        ];
        let groups =
            vec![vec![rec("w1", 100)], vec![rec("a1", 100), rec("a2", 101), rec("a3", 102)]];
        let out = analyse(&entries, &groups, Some(&budgets()), 100);
        assert_eq!(out[0].accounts_claimed, 1);
        assert_eq!(out[0].claim_credit_units, -20);
        assert_eq!(out[0].cleanup_units, 0.0);
        assert_eq!(out[1].cleanup_units, 30.0);
        assert_eq!(out[1].accounts_expired_unclaimed, 2);
        assert_eq!(out[1].accounts_unsettled, 1);
        let w = out[1].worst_key.clone().expect("a budgeted key");
        assert_eq!((w.key.as_str(), w.debt, w.refuse_at), ("ip:1.1.1.1", 30, 150));
        assert_eq!(out[1].within_budget, Some(true));
        // The fingerprint key has no budget and is not counted.
        assert_eq!(out[1].keys, 1);
    }

    #[test]
    fn accounts_in_flight_at_the_trip_are_allowed_later_ones_are_not() {
        // 10 accounts of 15 units trip the 150 budget at t=200; two more
        // created before the trip expire after it (in flight): within.
        let mut entries: Vec<Entry> = (0..10)
            .map(|i| entry(191 + i, &format!("a{i}"), "ip:1.1.1.1", Reason::ExpiredUnclaimed, 15))
            .collect();
        let mut accounts: Vec<AccountRecord> =
            (0..10).map(|i| rec(&format!("a{i}"), 160 + i)).collect();
        for (id, created, charged) in [("f1", 199, 220), ("f2", 200, 225)] {
            entries.push(entry(charged, id, "ip:1.1.1.1", Reason::ExpiredUnclaimed, 15));
            accounts.push(rec(id, created));
        }
        let out = analyse(&entries, std::slice::from_ref(&accounts), Some(&budgets()), 100);
        let w = out[0].worst_key.clone().expect("key");
        assert_eq!(w.tripped_after_secs, Some(100));
        assert_eq!(w.debt, 180);
        assert_eq!(w.in_flight_units, 15 + 15 + 15);
        assert_eq!(w.allowed, 135 + 45);
        assert!(w.within, "{w:?}");
        assert_eq!(out[0].keys_refused, 1);
        assert_eq!(out[0].keys_harder_pow, 1);

        // An account created after the trip is over the allowance.
        entries.push(entry(260, "late", "ip:1.1.1.1", Reason::ExpiredUnclaimed, 15));
        accounts.push(rec("late", 230));
        let out = analyse(&entries, std::slice::from_ref(&accounts), Some(&budgets()), 100);
        let w = out[0].worst_key.clone().expect("key");
        // 135 before the trip + 45 in flight.
        assert_eq!((w.debt, w.allowed), (195, 180));
        assert!(!w.within);
        assert_eq!(out[0].within_budget, Some(false));
        assert_eq!(out[0].keys_over, 1);
    }

    #[test]
    fn claims_offset_debt_and_no_budgets_means_no_verdict() {
        let entries = vec![
            entry(110, "a1", "ip:1.1.1.1", Reason::ExpiredUnclaimed, 15),
            entry(111, "a2", "ip:1.1.1.1", Reason::Claimed, -20),
        ];
        let groups = vec![vec![rec("a1", 100), rec("a2", 100)]];
        let out = analyse(&entries, &groups, Some(&budgets()), 100);
        assert_eq!(out[0].worst_key.as_ref().map(|k| k.debt), Some(0));
        let out = analyse(&entries, &groups, None, 100);
        assert_eq!(out[0].within_budget, None);
        assert_eq!(out[0].cleanup_units, 15.0);
    }
}
