//! The acceptance lines: what a run is judged by.

use super::{Check, Report, WELL_BEHAVED_MIN_PCT};
use crate::archetype::Archetype;

impl Report {
    /// The acceptance lines: well-behaved agents complete at least 99% of
    /// the deploys they wanted; every other group stays within its cleanup
    /// budgets (judged on the ledger only: `SKIP` without one), the
    /// distributed group also by the platform's total against the global
    /// budget, which a swarm spread thin reaches while every key it used
    /// stays within its own; throughput
    /// and latency, for the record.
    pub fn evaluate(&mut self) {
        let mut checks = Vec::new();
        for g in &self.groups {
            if g.archetype == Archetype::WellBehaved.name() {
                let ok = g.deploys_wanted > 0 && g.completion_pct >= WELL_BEHAVED_MIN_PCT;
                checks.push(Check {
                    status: if ok { "PASS" } else { "FAIL" }.into(),
                    name: format!("{}: deploys completed >= {WELL_BEHAVED_MIN_PCT:.0}%", g.label),
                    detail: format!(
                        "{}/{} = {:.1}% ({} of {} agents started; {} requests refused)",
                        g.deploys_completed,
                        g.deploys_wanted,
                        g.completion_pct,
                        g.agents_started,
                        g.agents,
                        g.refused
                    ),
                });
                continue;
            }
            let c = &g.cleanup;
            let (status, detail) = match (c.within_budget, &c.worst_key) {
                (None, _) => (
                    "SKIP",
                    format!(
                        "no gateway ledger or budgets to judge by ({:.0} units {})",
                        c.cleanup_units, c.basis
                    ),
                ),
                (Some(within), None) => (
                    if within { "PASS" } else { "FAIL" },
                    format!(
                        "{:.0} units over {} unclaimed accounts, charged to no budgeted key",
                        c.cleanup_units, c.accounts_expired_unclaimed
                    ),
                ),
                (Some(within), Some(k)) => (
                    if within { "PASS" } else { "FAIL" },
                    format!(
                        "{:.0} units over {} unclaimed accounts on {} budgeted keys; worst {} debt {} vs refuse budget {}{} ({} keys over)",
                        c.cleanup_units,
                        c.accounts_expired_unclaimed,
                        c.keys,
                        k.key,
                        k.debt,
                        k.refuse_at,
                        match k.tripped_after_secs {
                            Some(t) => format!(
                                ", tripped at {t} s, allowed {} incl. {} in flight",
                                k.allowed, k.in_flight_units
                            ),
                            None => String::new(),
                        },
                        c.keys_over
                    ),
                ),
            };
            let (status, detail) = if g.archetype == Archetype::Distributed.name() {
                with_global(status, detail, c.global.as_ref())
            } else {
                (status, detail)
            };
            checks.push(Check {
                status: status.into(),
                name: format!("{}: cleanup cost within budget", g.label),
                detail,
            });
        }
        checks.extend(self.attack_checks());
        let t = &self.totals;
        checks.push(Check {
            status: "INFO".into(),
            name: "throughput and latency through the gateway".into(),
            detail: format!(
                "{:.1} req/s over {:.1} s; p50 {:.2} ms, p99 {:.2} ms (refusals, answered by the gateway alone: p50 {:.2} ms, p99 {:.2} ms)",
                t.requests_per_sec,
                self.elapsed_secs,
                t.latency.p50_ms,
                t.latency.p99_ms,
                t.latency_refused.p50_ms,
                t.latency_refused.p99_ms
            ),
        });
        self.acceptance = checks;
    }

    /// True when no acceptance line failed.
    pub fn accepted(&self) -> bool {
        self.acceptance.iter().all(|c| c.status != "FAIL")
    }

    /// The acceptance lines as text.
    pub fn acceptance_text(&self) -> String {
        let mut out = String::from("acceptance:\n");
        for c in &self.acceptance {
            out.push_str(&format!("  {:<4} {}: {}\n", c.status, c.name, c.detail));
        }
        out
    }
}

/// Adds the platform's total against the global budget to a distributed
/// group's line: it fails when the total went past what the global budget
/// allows, whatever the per-key verdict.
fn with_global(
    status: &'static str,
    detail: String,
    global: Option<&crate::ledger::KeyCheck>,
) -> (&'static str, String) {
    let Some(g) = global else { return (status, detail) };
    let status = match (status, g.within) {
        (_, false) => "FAIL",
        ("SKIP", true) => "PASS",
        (s, true) => s,
    };
    let trip = match g.tripped_after_secs {
        Some(t) => format!(
            ", reached at {t} s, allowed {} incl. {} in flight",
            g.allowed, g.in_flight_units
        ),
        None => String::new(),
    };
    let verdict = if g.within { "within" } else { "OVER" };
    let detail = format!(
        "{detail}; platform total {} units over {} accounts vs global budget {}{trip}: {verdict}",
        g.debt, g.accounts, g.refuse_at
    );
    (status, detail)
}

#[cfg(test)]
mod tests {
    use super::with_global;
    use crate::ledger::{KeyCheck, GLOBAL_KEY};

    fn total(debt: u64, within: bool) -> KeyCheck {
        KeyCheck {
            key: GLOBAL_KEY.into(),
            debt,
            harder_pow_at: Some(1500),
            refuse_at: 1500,
            tripped_after_secs: (debt >= 1500).then_some(40),
            in_flight_units: 15,
            allowed: 1500,
            within,
            accounts: debt / 15,
        }
    }

    #[test]
    fn a_distributed_group_within_every_key_fails_on_the_total() {
        let (status, detail) = with_global("PASS", "keys fine".into(), Some(&total(3000, false)));
        assert_eq!(status, "FAIL");
        assert!(
            detail.contains("platform total 3000 units over 200 accounts vs global budget 1500"),
            "{detail}"
        );
        assert!(detail.ends_with("OVER"), "{detail}");
        assert_eq!(with_global("PASS", "k".into(), Some(&total(600, true))).0, "PASS");
        assert_eq!(with_global("FAIL", "k".into(), Some(&total(600, true))).0, "FAIL");
        assert_eq!(with_global("PASS", "k".into(), None), ("PASS", "k".to_string()));
    }
}
