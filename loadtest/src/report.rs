//! The run's results: a table for people, JSON for machines, and the
//! acceptance lines.
//!
//! Cleanup cost comes from the gateway's ledger when the tester can read it
//! (spawned gateway, or a URL target with `admin_url`): see [`crate::ledger`]
//! for how units are attributed to groups and what "within budget" means.
//! Without a ledger it falls back to a client-side estimate (accounts
//! created minus claimed, times `cleanup_cost_per_account`), and the report
//! says so in `cleanup_cost_basis`.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::archetype::Archetype;
use crate::ledger::{Budget, GroupCleanup};
use crate::scenario::Scenario;
use crate::stats::{get, GroupStats, RunStats};

/// Cleanup cost basis without a ledger.
pub const CLEANUP_COST_BASIS: &str = "estimated client-side: (accounts created - accounts claimed) x cleanup_cost_per_account; no gateway ledger was read";
/// Cleanup cost basis with the gateway's ledger.
pub const LEDGER_BASIS: &str = "gateway ledger (GET /ledger/entries): units the gateway charged for accounts that expired unclaimed, attributed to groups by account id";
/// Share of their deploys well-behaved agents must complete.
pub const WELL_BEHAVED_MIN_PCT: f64 = 99.0;

/// Client-side latency summary, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Requests measured.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    /// Summary of a histogram of microseconds.
    pub fn from(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self {
                count: 0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// Results of one agent group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// Group label.
    pub label: String,
    /// Archetype name.
    pub archetype: String,
    /// Agents in the group.
    pub agents: u64,
    /// Agents that started before the run ended.
    pub agents_started: u64,
    /// Agents that got all the deploys they wanted.
    pub agents_succeeded: u64,
    /// Requests sent.
    pub requests: u64,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused by policy.
    pub refused: u64,
    /// Requests that failed (transport, 5xx).
    pub errors: u64,
    /// Deploy runs started (a refused run that is retried counts twice).
    pub deploys_attempted: u64,
    /// Deploy runs completed.
    pub deploys_completed: u64,
    /// Deploys the started agents wanted (agents started x deploys each).
    pub deploys_wanted: u64,
    /// Completed / wanted, in percent.
    pub completion_pct: f64,
    /// Accounts created.
    pub accounts_created: u64,
    /// Claims attempted.
    pub claims_attempted: u64,
    /// Accounts claimed.
    pub accounts_claimed: u64,
    /// Resources created (KV, D1, queues, asset files).
    pub resources_created: u64,
    /// Resource creations refused or failed.
    pub resources_refused: u64,
    /// Proofs of work solved.
    pub pow_solved: u64,
    /// Mean time per solve.
    pub pow_mean_ms: f64,
    /// Client-side latency of this group's requests.
    pub latency: Latency,
    /// Cleanup cost and budgets (see `cleanup_cost_basis`).
    pub cleanup: GroupCleanup,
    /// Refusals by call, status, code and message (numbers blanked).
    pub refusal_reasons: BTreeMap<String, u64>,
    /// Per second since the start: `[admitted, refused]`.
    pub timeline: Vec<[u64; 2]>,
    /// Example error messages (secret-free).
    pub error_samples: Vec<String>,
}

impl GroupReport {
    fn from(g: &GroupStats, cost_per_account: f64) -> Self {
        let attempted = get(&g.deploys_attempted);
        let completed = get(&g.deploys_completed);
        let wanted = get(&g.deploys_wanted);
        let created = get(&g.accounts_created);
        let claimed = get(&g.accounts_claimed);
        let solved = get(&g.pow_solved);
        Self {
            label: g.label.clone(),
            archetype: g.archetype.name().to_string(),
            agents: g.agents,
            agents_started: get(&g.agents_started),
            agents_succeeded: get(&g.agents_succeeded),
            requests: get(&g.requests),
            admitted: get(&g.admitted),
            refused: get(&g.refused),
            errors: get(&g.errors),
            deploys_attempted: attempted,
            deploys_completed: completed,
            deploys_wanted: wanted,
            completion_pct: percent(completed, wanted),
            accounts_created: created,
            claims_attempted: get(&g.claims_attempted),
            accounts_claimed: claimed,
            resources_created: get(&g.resources_created),
            resources_refused: get(&g.resources_refused),
            pow_solved: solved,
            pow_mean_ms: if solved == 0 {
                0.0
            } else {
                get(&g.pow_micros) as f64 / solved as f64 / 1000.0
            },
            latency: Latency::from(&g.latency()),
            cleanup: GroupCleanup::estimate(created, claimed, cost_per_account),
            refusal_reasons: g.refusal_reasons(),
            timeline: g.timeline(),
            error_samples: g.error_samples(),
        }
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Totals over all groups.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Requests sent.
    pub requests: u64,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused.
    pub refused: u64,
    /// Requests failed.
    pub errors: u64,
    /// Requests per second achieved over the run.
    pub requests_per_sec: f64,
    /// Deploys completed.
    pub deploys_completed: u64,
    /// Deploy runs attempted.
    pub deploys_attempted: u64,
    /// Deploys wanted.
    pub deploys_wanted: u64,
    /// Accounts created.
    pub accounts_created: u64,
    /// Accounts claimed.
    pub accounts_claimed: u64,
    /// Client-side latency of all requests through the target (loopback:
    /// the gateway, plus the platform for admitted requests).
    pub latency: Latency,
    /// Latency of refused requests, which the gateway answers alone.
    pub latency_refused: Latency,
    /// Cleanup units over all groups.
    pub cleanup_units: f64,
}

/// One acceptance line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    /// `PASS`, `FAIL`, `SKIP` (cannot be judged: no ledger) or `INFO`.
    pub status: String,
    /// What is checked.
    pub name: String,
    /// The numbers.
    pub detail: String,
}

/// What the ledger read at the end said.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LedgerInfo {
    /// Where it was read (admin listener).
    pub admin_url: Option<String>,
    /// Entries read.
    pub entries: usize,
    /// Entries skipped as malformed.
    pub skipped: usize,
    /// Why the ledger could not be used, if it could not.
    pub error: Option<String>,
    /// Seconds spent waiting at the end for the last expiries to be charged.
    pub settle_secs: f64,
    /// The policy's budgets used for the checks.
    pub budgets: Vec<Budget>,
    /// The gateway's `GET /stats` at the end (rule counters), if read.
    pub gateway_stats: Option<serde_json::Value>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// What was tested.
    pub target: String,
    /// `--scale` applied.
    pub scale: f64,
    /// Duration limit used.
    pub duration_limit_secs: f64,
    /// Wall-clock time the run took.
    pub elapsed_secs: f64,
    /// Why the run ended.
    pub stopped_by: String,
    /// Cost per unclaimed account (scenario).
    pub cleanup_cost_per_account: f64,
    /// Where cleanup cost figures come from.
    pub cleanup_cost_basis: String,
    /// Totals.
    pub totals: Totals,
    /// Per group.
    pub groups: Vec<GroupReport>,
    /// The ledger read at the end, if any.
    pub ledger: Option<LedgerInfo>,
    /// Acceptance lines (see [`Report::evaluate`]).
    pub acceptance: Vec<Check>,
}

impl Report {
    /// Assemble the report from a run's counters.
    pub fn build(
        scenario: &Scenario,
        run: &RunStats,
        elapsed: Duration,
        duration_limit_secs: f64,
        scale: f64,
        target: String,
        stopped_by: String,
    ) -> Self {
        let groups: Vec<GroupReport> = run
            .groups
            .iter()
            .map(|g| GroupReport::from(g, scenario.cleanup_cost_per_account))
            .collect();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let requests = groups.iter().map(|g| g.requests).sum::<u64>();
        let totals = Totals {
            requests,
            admitted: groups.iter().map(|g| g.admitted).sum(),
            refused: groups.iter().map(|g| g.refused).sum(),
            errors: groups.iter().map(|g| g.errors).sum(),
            requests_per_sec: requests as f64 / secs,
            deploys_completed: groups.iter().map(|g| g.deploys_completed).sum(),
            deploys_attempted: groups.iter().map(|g| g.deploys_attempted).sum(),
            deploys_wanted: groups.iter().map(|g| g.deploys_wanted).sum(),
            accounts_created: groups.iter().map(|g| g.accounts_created).sum(),
            accounts_claimed: groups.iter().map(|g| g.accounts_claimed).sum(),
            latency: Latency::from(&run.latency()),
            latency_refused: Latency::from(&run.refused_latency()),
            cleanup_units: groups.iter().map(|g| g.cleanup.cleanup_units).sum(),
        };
        Self {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            target,
            scale,
            duration_limit_secs,
            elapsed_secs: elapsed.as_secs_f64(),
            stopped_by,
            cleanup_cost_per_account: scenario.cleanup_cost_per_account,
            cleanup_cost_basis: CLEANUP_COST_BASIS.to_string(),
            totals,
            groups,
            ledger: None,
            acceptance: Vec::new(),
        }
    }

    /// Replace the estimate with the ledger's figures (one per group, in
    /// group order).
    pub fn apply_ledger(&mut self, cleanup: Vec<GroupCleanup>, info: LedgerInfo) {
        if cleanup.len() == self.groups.len() {
            for (g, c) in self.groups.iter_mut().zip(cleanup) {
                g.cleanup = c;
            }
            self.cleanup_cost_basis = LEDGER_BASIS.to_string();
            self.totals.cleanup_units = self.groups.iter().map(|g| g.cleanup.cleanup_units).sum();
        }
        self.ledger = Some(info);
    }

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

    /// The summary table, as printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "scenario {} | {} | {:.1}s ({}) | {:.1} req/s | latency p50 {:.2} ms p99 {:.2} ms\n\n",
            self.scenario,
            self.target,
            self.elapsed_secs,
            self.stopped_by,
            self.totals.requests_per_sec,
            self.totals.latency.p50_ms,
            self.totals.latency.p99_ms,
        ));
        let header = [
            "group",
            "agents",
            "requests",
            "admitted",
            "refused",
            "errors",
            "deploys",
            "done %",
            "accounts",
            "claimed",
            "expired",
            "resources",
            "cleanup*",
            "worst key debt/budget",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
        for g in &self.groups {
            let c = &g.cleanup;
            rows.push(vec![
                g.label.clone(),
                g.agents.to_string(),
                g.requests.to_string(),
                g.admitted.to_string(),
                g.refused.to_string(),
                g.errors.to_string(),
                format!("{}/{}", g.deploys_completed, g.deploys_wanted),
                format!("{:.1}", g.completion_pct),
                g.accounts_created.to_string(),
                g.accounts_claimed.to_string(),
                if c.basis == "ledger" {
                    c.accounts_expired_unclaimed.to_string()
                } else {
                    "-".into()
                },
                format!(
                    "{}/{}",
                    g.resources_created,
                    g.resources_created + g.resources_refused
                ),
                format!("{:.0}", c.cleanup_units),
                match &c.worst_key {
                    Some(k) => format!(
                        "{}/{} {}{}",
                        k.debt,
                        k.refuse_at,
                        key_short(&k.key),
                        if k.within { "" } else { " OVER" }
                    ),
                    None => "-".into(),
                },
            ]);
        }
        let t = &self.totals;
        let res_ok: u64 = self.groups.iter().map(|g| g.resources_created).sum();
        let res_no: u64 = self.groups.iter().map(|g| g.resources_refused).sum();
        let expired: u64 = self.groups.iter().map(|g| g.cleanup.accounts_expired_unclaimed).sum();
        rows.push(vec![
            "TOTAL".to_string(),
            self.groups
                .iter()
                .map(|g| g.agents)
                .sum::<u64>()
                .to_string(),
            t.requests.to_string(),
            t.admitted.to_string(),
            t.refused.to_string(),
            t.errors.to_string(),
            format!("{}/{}", t.deploys_completed, t.deploys_wanted),
            format!("{:.1}", percent(t.deploys_completed, t.deploys_wanted)),
            t.accounts_created.to_string(),
            t.accounts_claimed.to_string(),
            expired.to_string(),
            format!("{res_ok}/{}", res_ok + res_no),
            format!("{:.0}", t.cleanup_units),
            String::new(),
        ]);
        let widths: Vec<usize> = (0..header.len())
            .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        for (i, r) in rows.iter().enumerate() {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, v)| {
                    if c == 0 || c + 1 == header.len() {
                        format!("{v:<w$}", w = widths[c])
                    } else {
                        format!("{v:>w$}", w = widths[c])
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
            if i == 0 || i + 2 == rows.len() {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
                out.push('\n');
            }
        }
        out.push_str(&format!("\n* cleanup units: {}\n", self.cleanup_cost_basis));
        out.push_str("  deploys: completed/wanted by the agents that started; expired: accounts charged as expired unclaimed;\n  worst key: the budgeted source key of the group nearest its refuse budget (debt/budget, units)\n");
        if let Some(l) = &self.ledger {
            if let Some(e) = &l.error {
                out.push_str(&format!("  ledger: {e}\n"));
            }
            let unsettled: u64 = self.groups.iter().map(|g| g.cleanup.accounts_unsettled).sum();
            if l.error.is_none() {
                out.push_str(&format!(
                    "  ledger: {} entries read after {:.1} s of settling; {} accounts not charged yet (still live)\n",
                    l.entries, l.settle_secs, unsettled
                ));
            }
        }
        out.push('\n');
        for g in &self.groups {
            if !g.refusal_reasons.is_empty() {
                let mut reasons: Vec<(&String, &u64)> = g.refusal_reasons.iter().collect();
                reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                out.push_str(&format!("refusals of {}:\n", g.label));
                for (r, n) in reasons.iter().take(4) {
                    out.push_str(&format!("  {n:>6}  {r}\n"));
                }
            }
        }
        for g in &self.groups {
            if !g.error_samples.is_empty() {
                out.push_str(&format!(
                    "errors seen by {}: {}\n",
                    g.label,
                    g.error_samples.join("; ")
                ));
            }
        }
        out.push('\n');
        out.push_str(&self.acceptance_text());
        out
    }
}

/// A source key short enough for a table cell.
pub fn key_short(key: &str) -> String {
    if key.chars().count() <= 32 {
        key.to_string()
    } else {
        let cut: String = key.chars().take(31).collect();
        format!("{cut}~")
    }
}
