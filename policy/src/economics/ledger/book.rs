//! Ledger entries and the [`Ledger`] that sums them per source key and window.

use super::{BudgetAction, Budgets, Costs};
use crate::economics::accounts::{describe, human_secs, SourceKey, SourceKeys};
use crate::economics::quota::ResourceCounts;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{BufRead, Write};

// ---------------------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------------------

/// Why an entry was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The account expired without a claim: its cleanup cost is charged.
    ExpiredUnclaimed,
    /// The account was claimed: the source earns credit (negative units), and a charge
    /// made earlier for it is reversed.
    Claimed,
}

/// One ledger line. No token, no claim URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// When, unix seconds.
    pub at: u64,
    /// The platform's account id.
    pub account_id: String,
    /// Every key the account is attributed to (each is charged the full units).
    pub source_keys: Vec<SourceKey>,
    /// Why.
    pub reason: Reason,
    /// Units charged (positive) or credited (negative).
    pub units: i64,
    /// What the account held.
    pub resources: ResourceCounts,
}

impl LedgerEntry {
    /// The entry as one JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A source whose debt reached a budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetBreach {
    /// The key that is over.
    pub key: SourceKey,
    /// Its debt in the window.
    pub debt: u64,
    /// The budget.
    pub budget: u64,
    /// Seconds until enough debt leaves the window to fall below the budget.
    pub retry_after_secs: u64,
    /// What to do.
    pub action: BudgetAction,
    /// User-facing explanation (for `Refuse`).
    pub message: String,
}

/// A ledger file line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger line {line}: {message}")]
pub struct LedgerLoadError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Default)]
struct Inner {
    entries: Vec<LedgerEntry>,
    by_key: HashMap<SourceKey, Vec<usize>>,
    /// Per account: units charged (if charged) and whether a claim was recorded, so each
    /// happens once.
    accounts: HashMap<String, (Option<i64>, bool)>,
}

impl Inner {
    fn push(&mut self, entry: LedgerEntry) {
        let idx = self.entries.len();
        let state = self.accounts.entry(entry.account_id.clone()).or_default();
        match entry.reason {
            Reason::ExpiredUnclaimed => {
                state.0 = Some(state.0.unwrap_or(0).saturating_add(entry.units))
            }
            Reason::Claimed => state.1 = true,
        }
        let mut keys: Vec<&SourceKey> = entry.source_keys.iter().collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            self.by_key.entry(k.clone()).or_default().push(idx);
        }
        self.entries.push(entry);
    }

    /// Entries of `key` in the window ending at `now` (entries stamped after `now`,
    /// from clock skew, count as current), ordered by time.
    fn window_entries(&self, key: &SourceKey, now: u64, window: u64) -> Vec<(u64, i64)> {
        if *key == SourceKey::Global {
            let mut v: Vec<(u64, i64)> = self
                .entries
                .iter()
                .filter(|e| e.at.saturating_add(window) > now)
                .map(|e| (e.at, e.units))
                .collect();
            v.sort_unstable();
            return v;
        }
        let mut v: Vec<(u64, i64)> = self
            .by_key
            .get(key)
            .map(|idx| {
                idx.iter()
                    .filter_map(|&i| self.entries.get(i))
                    .filter(|e| e.at.saturating_add(window) > now)
                    .map(|e| (e.at, e.units))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    }
}

/// Keeps the breach that acts hardest (refuse over harder proof-of-work), then the one
/// that lasts longest.
fn keep_worst(worst: &mut Option<BudgetBreach>, breach: BudgetBreach) {
    let better = match worst {
        None => true,
        Some(w) => (breach.action, breach.retry_after_secs) > (w.action, w.retry_after_secs),
    };
    if better {
        *worst = Some(breach);
    }
}

/// Clamps a sum to a non-negative debt: credits offset charges in the same window but
/// never bank "negative debt" for later abuse.
fn as_debt(sum: i64) -> u64 {
    u64::try_from(sum).unwrap_or(0)
}

fn to_units(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The append-only cleanup-cost ledger (in memory; persist with
/// [`Ledger::write_json_lines`] or by appending each returned entry's
/// [`LedgerEntry::to_json_line`] to a file).
#[derive(Default)]
pub struct Ledger {
    inner: RwLock<Inner>,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger").field("entries", &self.inner.read().entries.len()).finish()
    }
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Charges an account that expired unclaimed to every key of its creator. Returns the
    /// entry written, or `None` when the account was already charged or was claimed.
    pub fn charge_expired_unclaimed(
        &self,
        account_id: &str,
        source: &SourceKeys,
        resources: ResourceCounts,
        at: u64,
        costs: &Costs,
    ) -> Option<LedgerEntry> {
        let mut inner = self.inner.write();
        if let Some((charged, claimed)) = inner.accounts.get(account_id) {
            if charged.is_some() || *claimed {
                return None;
            }
        }
        let entry = LedgerEntry {
            at,
            account_id: account_id.to_string(),
            source_keys: source.keys(),
            reason: Reason::ExpiredUnclaimed,
            units: to_units(costs.cleanup_cost(&resources)),
            resources,
        };
        inner.push(entry.clone());
        Some(entry)
    }

    /// Credits the creator of a claimed account. A charge written earlier for the same
    /// account (a claim reported after the sweeper ran) is reversed in the same entry.
    /// Returns `None` when the claim was already recorded.
    pub fn credit_claimed(
        &self,
        account_id: &str,
        source: &SourceKeys,
        resources: ResourceCounts,
        at: u64,
        costs: &Costs,
    ) -> Option<LedgerEntry> {
        let mut inner = self.inner.write();
        let charged = match inner.accounts.get(account_id) {
            Some((_, true)) => return None,
            Some((charged, false)) => charged.unwrap_or(0),
            None => 0,
        };
        let entry = LedgerEntry {
            at,
            account_id: account_id.to_string(),
            source_keys: source.keys(),
            reason: Reason::Claimed,
            units: charged.saturating_neg().saturating_sub(to_units(costs.claim_credit)),
            resources,
        };
        inner.push(entry.clone());
        Some(entry)
    }

    /// Appends an entry as is (loading a file, or replicating another gateway's ledger).
    pub fn append(&self, entry: LedgerEntry) {
        self.inner.write().push(entry);
    }

    /// Appends an entry another gateway of the fleet wrote (or this one, read back from
    /// the shared store), unless the ledger already holds its kind for that account: an
    /// account is charged once and credited once, whoever recorded it first. Returns
    /// whether it was appended.
    pub fn append_once(&self, entry: LedgerEntry) -> bool {
        let mut inner = self.inner.write();
        if let Some((charged, claimed)) = inner.accounts.get(&entry.account_id) {
            let held = match entry.reason {
                Reason::ExpiredUnclaimed => charged.is_some(),
                Reason::Claimed => *claimed,
            };
            if held {
                return false;
            }
        }
        inner.push(entry);
        true
    }

    /// Unclaimed-cleanup debt of `key` over the `window_secs` ending at `now`, never
    /// below zero.
    pub fn debt(&self, key: &SourceKey, now: u64, window_secs: u64) -> u64 {
        let inner = self.inner.read();
        as_debt(inner.window_entries(key, now, window_secs).iter().map(|e| e.1).sum())
    }

    /// Net units of `key` over the window: charges minus claim credits, negative when
    /// the key's record is mostly claimed accounts (the fair-share ceiling's priority).
    pub fn net_units(&self, key: &SourceKey, now: u64, window_secs: u64) -> i64 {
        let inner = self.inner.read();
        inner.window_entries(key, now, window_secs).iter().map(|e| e.1).sum()
    }

    /// The largest debt over the keys of `source` (input of adaptive proof-of-work).
    pub fn source_debt(&self, source: &SourceKeys, now: u64, window_secs: u64) -> u64 {
        source.keys().iter().map(|k| self.debt(k, now, window_secs)).max().unwrap_or(0)
    }

    /// The budget `source` breaches at `now`, if any: a `Refuse` breach wins over a
    /// `HarderPow` one, and among equals the longest wait.
    ///
    /// A key breaches a budget when its debt is positive and at or above the budget:
    /// "at most N units" means a source at N may not add another account.
    pub fn over_budget(
        &self,
        source: &SourceKeys,
        now: u64,
        budgets: &Budgets,
    ) -> Option<BudgetBreach> {
        let inner = self.inner.read();
        let mut worst: Option<BudgetBreach> = None;
        for rule in &budgets.rules {
            let Some(key) = source.key_of(rule.kind) else {
                continue;
            };
            let entries = inner.window_entries(&key, now, rule.window_secs);
            let debt = as_debt(entries.iter().map(|e| e.1).sum());
            if debt == 0 || debt < rule.units {
                continue;
            }
            let retry = retry_after(&entries, now, rule.window_secs, rule.units);
            let message = format!(
                "Too much unclaimed cleanup: temporary accounts created from {} and left to expire unclaimed \
                 cost {debt} units in the last {} (the budget is {}). Try again in {retry} seconds, \
                 or claim the temporary accounts you create.",
                describe(&key),
                human_secs(rule.window_secs),
                rule.units
            );
            let breach = BudgetBreach {
                key,
                debt,
                budget: rule.units,
                retry_after_secs: retry,
                action: rule.action,
                message,
            };
            keep_worst(&mut worst, breach);
        }
        for g in &budgets.global {
            let entries = inner.window_entries(&SourceKey::Global, now, g.window_secs);
            let debt = as_debt(entries.iter().map(|e| e.1).sum());
            if debt == 0 || debt < g.units {
                continue;
            }
            let retry = retry_after(&entries, now, g.window_secs, g.units);
            let message = format!(
                "The service is under a swarm of abandoned temporary accounts: unclaimed cleanup \
                 from all sources together cost {debt} units in the last {} (the budget is {}). \
                 Try again in {retry} seconds, or claim the temporary accounts you create.",
                human_secs(g.window_secs),
                g.units
            );
            keep_worst(
                &mut worst,
                BudgetBreach {
                    key: SourceKey::Global,
                    debt,
                    budget: g.units,
                    retry_after_secs: retry,
                    action: g.action,
                    message,
                },
            );
        }
        worst
    }

    /// Forgets entries stamped before `before`, to bound the memory of a long-running
    /// gateway; returns how many went. Keep everything inside the longest budget window
    /// (the file written with [`LedgerEntry::to_json_line`] keeps the full history).
    pub fn forget_before(&self, before: u64) -> usize {
        let mut inner = self.inner.write();
        if inner.entries.iter().all(|e| e.at >= before) {
            return 0;
        }
        let old = std::mem::take(&mut inner.entries);
        let total = old.len();
        *inner = Inner::default();
        for entry in old.into_iter().filter(|e| e.at >= before) {
            inner.push(entry);
        }
        total - inner.entries.len()
    }

    /// Every entry involving `key`, oldest first.
    pub fn by_source(&self, key: &SourceKey) -> Vec<LedgerEntry> {
        let inner = self.inner.read();
        if *key == SourceKey::Global {
            return inner.entries.clone();
        }
        inner
            .by_key
            .get(key)
            .map(|idx| idx.iter().filter_map(|&i| inner.entries.get(i).cloned()).collect())
            .unwrap_or_default()
    }

    /// The `n` keys with the most net units since `since`: `(key, units, accounts)`,
    /// most units first (ties by key, so output is stable).
    pub fn top_sources(&self, n: usize, since: u64) -> Vec<(SourceKey, i64, usize)> {
        let inner = self.inner.read();
        let mut agg: HashMap<&SourceKey, (i64, BTreeSet<&str>)> = HashMap::new();
        for e in inner.entries.iter().filter(|e| e.at >= since) {
            let mut keys: Vec<&SourceKey> = e.source_keys.iter().collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let a = agg.entry(k).or_default();
                a.0 = a.0.saturating_add(e.units);
                a.1.insert(&e.account_id);
            }
        }
        let mut out: Vec<(SourceKey, i64, usize)> =
            agg.into_iter().map(|(k, (u, accs))| (k.clone(), u, accs.len())).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out.truncate(n);
        out
    }

    /// Net units and distinct accounts per hour in `[since, until)`:
    /// `(hour_start, units, accounts)`, only hours with entries, oldest first. Each entry
    /// counts once here (not once per key).
    pub fn totals_per_hour(&self, since: u64, until: u64) -> Vec<(u64, i64, usize)> {
        let inner = self.inner.read();
        let mut hours: BTreeMap<u64, (i64, BTreeSet<&str>)> = BTreeMap::new();
        for e in inner.entries.iter().filter(|e| e.at >= since && e.at < until) {
            let h = hours.entry(e.at - e.at % 3600).or_default();
            h.0 = h.0.saturating_add(e.units);
            h.1.insert(&e.account_id);
        }
        hours.into_iter().map(|(h, (u, a))| (h, u, a.len())).collect()
    }

    /// Net units and distinct accounts since `since` (each entry once).
    pub fn total(&self, since: u64) -> (i64, usize) {
        let inner = self.inner.read();
        let mut units = 0i64;
        let mut accounts = BTreeSet::new();
        for e in inner.entries.iter().filter(|e| e.at >= since) {
            units = units.saturating_add(e.units);
            accounts.insert(e.account_id.as_str());
        }
        (units, accounts.len())
    }

    /// All entries, in append order.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        self.inner.read().entries.clone()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes every entry as JSON lines.
    pub fn write_json_lines<W: Write>(&self, mut w: W) -> std::io::Result<()> {
        for e in self.inner.read().entries.iter() {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    /// Reads a JSON-lines ledger (blank lines skipped); the first bad line is an error
    /// with its number, so a truncated file is noticed rather than silently shortened.
    pub fn read_json_lines<R: BufRead>(r: R) -> Result<Ledger, LedgerLoadError> {
        let ledger = Ledger::new();
        {
            let mut inner = ledger.inner.write();
            for (i, line) in r.lines().enumerate() {
                let line =
                    line.map_err(|e| LedgerLoadError { line: i + 1, message: e.to_string() })?;
                if line.trim().is_empty() {
                    continue;
                }
                let entry: LedgerEntry = serde_json::from_str(&line)
                    .map_err(|e| LedgerLoadError { line: i + 1, message: e.to_string() })?;
                inner.push(entry);
            }
        }
        Ok(ledger)
    }
}

/// Seconds from `now` until the debt of `entries` (sorted by time, all in the window)
/// falls below `budget` as entries leave the window.
fn retry_after(entries: &[(u64, i64)], now: u64, window: u64, budget: u64) -> u64 {
    let mut sum: i64 = entries.iter().map(|e| e.1).sum();
    for (at, units) in entries {
        sum = sum.saturating_sub(*units);
        if as_debt(sum) < budget || sum <= 0 {
            return at.saturating_add(window).saturating_sub(now).max(1);
        }
    }
    window.max(1)
}
