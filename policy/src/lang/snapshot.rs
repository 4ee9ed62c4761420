//! Export and import of the limit tables' GCRA state, so a restarted gateway does not
//! hand every client a fresh burst.
//!
//! A table's state is, per key, its theoretical arrival time (TAT). TATs are
//! nanoseconds since the table's own start on a monotonic clock, meaningless in another
//! process, so a snapshot keeps instead how far each TAT is *ahead of the moment the
//! snapshot was taken* (its debt). Keys at or behind that moment decide exactly like
//! fresh keys and are left out. Importing subtracts the time elapsed since the
//! snapshot (measured by the caller on a wall clock) and puts back what is left.
//!
//! Each limit is identified by (rule, key text, rate, burst), as a policy reload does:
//! a limit whose rate or burst changed starts empty instead of inheriting counters
//! that meant something else.

use std::collections::HashMap;
use std::time::Duration;

use governor::clock::Clock;
use serde::{Deserialize, Serialize};

use crate::lang::engine::{Engine, TableId};
use crate::lang::fair_share::FairShareState;

/// One limit's state: its identity and the keys in debt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitState {
    /// The rule's name.
    pub rule: String,
    /// The limit's key as written (`ip`, `ip + http_fp`, …).
    pub key: String,
    /// The rate as written (`10/minute`).
    pub rate: String,
    /// The burst.
    pub burst: u32,
    /// (key value, nanoseconds its TAT was ahead of the snapshot's moment).
    pub debts: Vec<(String, u64)>,
}

/// Every limit's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitSnapshot {
    /// One entry per limit with at least one key in debt.
    pub limits: Vec<LimitState>,
    /// The `[fair_share]` counters, when the policy has the section.
    #[serde(default)]
    pub fair_share: Option<FairShareState>,
}

impl LimitSnapshot {
    /// Keys in debt, over every limit.
    pub fn keys(&self) -> usize {
        self.limits.iter().map(|l| l.debts.len()).sum()
    }
}

/// What an import put back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Keys whose debt was put back.
    pub restored: usize,
    /// Keys whose debt had run out meanwhile, or that a full table did not take.
    pub expired: usize,
    /// Limits of the snapshot that the policy in force no longer has, as
    /// `rule/key rate burst N` (changed or removed): not restored.
    pub unmatched: Vec<String>,
    /// Whether the fair-share counters were put back (false: none saved, or the
    /// section changed).
    pub fair_share: bool,
}

impl<C: Clock + Clone> Engine<C> {
    /// The state of every limit table now.
    pub fn export_limits(&self) -> LimitSnapshot {
        let limits = self
            .limit_tables()
            .into_iter()
            .filter_map(|((rule, key, rate, burst), table)| {
                let mut debts = table.debts();
                debts.sort();
                (!debts.is_empty()).then_some(LimitState { rule, key, rate, burst, debts })
            })
            .collect();
        LimitSnapshot { limits, fair_share: self.fair().map(|f| f.export()) }
    }

    /// Puts back the state of `snapshot`, taken `elapsed` ago, into the limits of the
    /// policy in force that have the same identity.
    pub fn import_limits(&self, snapshot: &LimitSnapshot, elapsed: Duration) -> RestoreReport {
        let tables: HashMap<TableId, _> = self.limit_tables().into_iter().collect();
        let elapsed = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let mut report = RestoreReport::default();
        if let (Some(saved), Some(fair)) = (&snapshot.fair_share, self.fair()) {
            report.fair_share = fair.import(saved, Duration::from_nanos(elapsed));
        }
        for limit in &snapshot.limits {
            let id = (limit.rule.clone(), limit.key.clone(), limit.rate.clone(), limit.burst);
            let Some(table) = tables.get(&id) else {
                report.unmatched.push(format!(
                    "{}/{} {} burst {}",
                    limit.rule, limit.key, limit.rate, limit.burst
                ));
                continue;
            };
            for (key, ahead) in &limit.debts {
                if table.restore_debt(key, ahead.saturating_sub(elapsed)) {
                    report.restored += 1;
                } else {
                    report.expired += 1;
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::decision::Request;
    use governor::clock::FakeRelativeClock;

    const BURST_2: &str = r#"
version = 1
[[rule]]
name = "per-ip"
match = { route = "provision-challenge" }
action = "limit"
limits = [{ key = "ip", rate = "1/minute", burst = 2 }]
"#;

    fn engine(src: &str) -> (Engine<FakeRelativeClock>, FakeRelativeClock) {
        let policy = crate::compile_str("t.toml", src).expect("policy");
        let clock = FakeRelativeClock::default();
        (Engine::with_clock(policy, clock.clone()), clock)
    }

    fn allowed(e: &Engine<FakeRelativeClock>, peer: &str) -> bool {
        let req = Request {
            method: "POST",
            path: "/client/v4/provisioning/previews/challenge",
            peer: peer.parse().expect("address"),
            http_version: "HTTP/1.1",
            headers: &[],
            tls_fp: None,
            account: None,
        };
        e.decide(&req).is_allowed()
    }

    fn used_up() -> LimitSnapshot {
        let (before, _) = engine(BURST_2);
        assert!(allowed(&before, "192.0.2.1") && allowed(&before, "192.0.2.1"));
        assert!(!allowed(&before, "192.0.2.1"));
        let snap = before.export_limits();
        // Through JSON, as the store keeps it.
        serde_json::from_str(&serde_json::to_string(&snap).expect("json")).expect("back")
    }

    #[test]
    fn a_used_up_limit_is_still_used_up_in_another_engine() {
        let snap = used_up();
        assert_eq!(snap.keys(), 1);
        assert!(snap.limits[0].debts[0].1 > 60_000_000_000, "two minutes of debt");
        let (after, clock) = engine(BURST_2);
        let report = after.import_limits(&snap, Duration::ZERO);
        assert_eq!((report.restored, report.expired), (1, 0));
        assert!(!allowed(&after, "192.0.2.1"), "no fresh burst");
        assert!(allowed(&after, "192.0.2.2"), "others are untouched");
        clock.advance(Duration::from_secs(60));
        assert!(allowed(&after, "192.0.2.1"), "the debt runs out at the usual pace");
    }

    #[test]
    fn time_passed_since_the_snapshot_is_paid_off() {
        let snap = used_up();
        let (after, _) = engine(BURST_2);
        // One minute later one request's worth is back; after five, all of it.
        after.import_limits(&snap, Duration::from_secs(60));
        assert!(allowed(&after, "192.0.2.1"));
        assert!(!allowed(&after, "192.0.2.1"));
        let (later, _) = engine(BURST_2);
        let report = later.import_limits(&snap, Duration::from_secs(300));
        assert_eq!((report.restored, report.expired), (0, 1));
        assert!(allowed(&later, "192.0.2.1") && allowed(&later, "192.0.2.1"));
    }

    #[test]
    fn a_filled_fair_share_ceiling_stays_filled() {
        let src = "version = 1\n[fair_share]\nceiling = \"3/hour\"\n";
        let (before, _) = engine(src);
        let fair = |e: &Engine<FakeRelativeClock>, peer: &str| {
            let policy = e.current_policy();
            let req = Request {
                method: "POST",
                path: "/client/v4/provisioning/previews",
                peer: peer.parse().expect("address"),
                http_version: "HTTP/1.1",
                headers: &[],
                tls_fp: None,
                account: None,
            };
            let id = crate::Identity::derive(&policy, req);
            !matches!(e.fair_share(&id, false), crate::FairVerdict::Refuse { .. })
        };
        for n in 0..3 {
            assert!(fair(&before, &format!("192.{n}.0.1")), "admission {n}");
        }
        assert!(!fair(&before, "198.51.100.1"), "the ceiling is reached");
        let snap: LimitSnapshot =
            serde_json::from_str(&serde_json::to_string(&before.export_limits()).expect("json"))
                .expect("back");
        let (after, clock) = engine(src);
        assert!(after.import_limits(&snap, Duration::ZERO).fair_share);
        assert!(!fair(&after, "198.51.100.1"), "still reached after a restart");
        clock.advance(Duration::from_secs(3600));
        assert!(fair(&after, "198.51.100.1"), "gone within the window");
        let (changed, _) = engine("version = 1\n[fair_share]\nceiling = \"4/hour\"\n");
        assert!(!changed.import_limits(&snap, Duration::ZERO).fair_share, "another ceiling");
    }

    #[test]
    fn a_changed_limit_is_not_restored() {
        let snap = used_up();
        let (after, _) = engine(&BURST_2.replace("burst = 2", "burst = 3"));
        let report = after.import_limits(&snap, Duration::ZERO);
        assert_eq!(report.restored, 0);
        assert_eq!(report.unmatched, vec!["per-ip/ip 1/minute burst 2".to_string()]);
        assert!(allowed(&after, "192.0.2.1"));
    }
}
