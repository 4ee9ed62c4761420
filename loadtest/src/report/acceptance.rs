//! The acceptance lines: what a run is judged by.

use super::{Check, Report, WELL_BEHAVED_MIN_PCT};
use crate::archetype::Archetype;

impl Report {
    /// The acceptance lines: well-behaved agents complete at least 99% of
    /// the deploys they wanted; every other group stays within its cleanup
    /// budgets (judged on the ledger only: `SKIP` without one); throughput
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
