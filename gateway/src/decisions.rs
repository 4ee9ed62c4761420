//! Decision counters of the request checks: how many requests were let on and how many
//! refused (by reason), in total and per client address.
//!
//! The admin API's "top sources by refusals" and the dashboard's decision rates read
//! these. The per-address table is bounded ([`MAX_SOURCES`]): once full, refusals of
//! addresses not in it are only counted in `untracked`, so a spray of addresses
//! cannot grow the gateway's memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

/// Addresses whose refusals are counted one by one.
pub const MAX_SOURCES: usize = 10_000;

/// The refusal reasons counted apart (names of `stage::refusal::Why::as_str`, plus
/// `blocked` for operator blocks).
pub const REASONS: &[&str] = &[
    "rate_limited",
    "account_limit",
    "budget",
    "denied",
    "quota",
    "proof_of_work",
    "bad_request",
    "busy",
    "blocked",
];

/// Counts of one client address.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SourceCounts {
    /// Requests refused by a check.
    pub refused: u64,
    /// Of those, refused by an operator block.
    pub blocked: u64,
    /// When it was last refused, unix seconds.
    pub last_refused_at: u64,
}

/// The totals, as the admin API answers them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Requests every check let on.
    pub allowed: u64,
    /// Requests refused, all reasons.
    pub refused: u64,
    /// Refusals per reason (every name of [`REASONS`], zeros included).
    pub refused_by_reason: Vec<(String, u64)>,
    /// Refusals of addresses past the table's capacity.
    pub untracked: u64,
}

/// The counters.
#[derive(Debug)]
pub struct DecisionTally {
    allowed: AtomicU64,
    by_reason: Vec<AtomicU64>,
    untracked: AtomicU64,
    sources: Mutex<HashMap<IpAddr, SourceCounts>>,
}

impl Default for DecisionTally {
    fn default() -> Self {
        DecisionTally {
            allowed: AtomicU64::new(0),
            by_reason: REASONS.iter().map(|_| AtomicU64::new(0)).collect(),
            untracked: AtomicU64::new(0),
            sources: Mutex::new(HashMap::new()),
        }
    }
}

impl DecisionTally {
    /// Counts a request the checks let on (no lock: the hot path).
    pub fn allowed(&self) {
        self.allowed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal of `ip` for `reason` (a name of [`REASONS`]; others count
    /// under `denied`).
    pub fn refused(&self, ip: IpAddr, reason: &str, now: u64) {
        let i = REASONS.iter().position(|r| *r == reason).unwrap_or(3);
        if let Some(c) = self.by_reason.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let mut sources = self.sources.lock();
        let len = sources.len();
        match sources.get_mut(&ip) {
            Some(s) => bump(s, reason, now),
            None if len < MAX_SOURCES => bump(sources.entry(ip).or_default(), reason, now),
            None => {
                self.untracked.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The totals now.
    pub fn totals(&self) -> Totals {
        let refused_by_reason: Vec<(String, u64)> = REASONS
            .iter()
            .zip(&self.by_reason)
            .map(|(r, c)| (r.to_string(), c.load(Ordering::Relaxed)))
            .collect();
        Totals {
            allowed: self.allowed.load(Ordering::Relaxed),
            refused: refused_by_reason.iter().map(|(_, n)| n).sum(),
            refused_by_reason,
            untracked: self.untracked.load(Ordering::Relaxed),
        }
    }

    /// The `n` addresses refused most often, most first (ties: the address order).
    pub fn top_refused(&self, n: usize) -> Vec<(IpAddr, SourceCounts)> {
        let sources = self.sources.lock();
        let mut all: Vec<(IpAddr, SourceCounts)> =
            sources.iter().map(|(ip, c)| (*ip, c.clone())).collect();
        drop(sources);
        all.sort_by(|a, b| b.1.refused.cmp(&a.1.refused).then(a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// The counts of one address, if it was ever refused.
    pub fn of(&self, ip: IpAddr) -> Option<SourceCounts> {
        self.sources.lock().get(&ip).cloned()
    }
}

fn bump(s: &mut SourceCounts, reason: &str, now: u64) {
    s.refused += 1;
    if reason == "blocked" {
        s.blocked += 1;
    }
    s.last_refused_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_per_reason_and_per_address_within_the_cap() {
        let t = DecisionTally::default();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        t.allowed();
        t.refused(a, "rate_limited", 10);
        t.refused(a, "blocked", 11);
        t.refused(b, "quota", 12);
        let totals = t.totals();
        assert_eq!((totals.allowed, totals.refused), (1, 3));
        assert!(totals.refused_by_reason.contains(&("blocked".into(), 1)));
        let top = t.top_refused(1);
        assert_eq!(top[0].0, a);
        assert_eq!(top[0].1, SourceCounts { refused: 2, blocked: 1, last_refused_at: 11 });
        for i in 0..MAX_SOURCES as u32 {
            t.refused(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)), "denied", 1);
        }
        assert_eq!(t.totals().untracked, 2, "the two addresses past the cap");
    }
}
