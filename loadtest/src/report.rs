//! The run's results: a table for people, JSON for machines.
//!
//! Cleanup cost is an estimate made on the client side — accounts created
//! minus accounts claimed, times the scenario's cost per account — because
//! the gateway does not expose a cost ledger yet. The report says so in
//! `cleanup_cost_basis`, so nobody mistakes it for a measured figure.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenario::Scenario;
use crate::stats::{get, GroupStats, RunStats};

/// Where the cleanup cost numbers come from.
pub const CLEANUP_COST_BASIS: &str = "estimated client-side: (accounts created - accounts claimed) x cleanup_cost_per_account; not a gateway ledger";

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
    fn from(h: &Histogram<u64>) -> Self {
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
    /// Deploy runs started.
    pub deploys_attempted: u64,
    /// Deploy runs completed.
    pub deploys_completed: u64,
    /// Completed / attempted, in percent.
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
    /// Estimated cleanup cost (see `cleanup_cost_basis`).
    pub estimated_cleanup_cost: f64,
    /// Per second since the start: `[admitted, refused]`.
    pub timeline: Vec<[u64; 2]>,
    /// Example error messages (secret-free).
    pub error_samples: Vec<String>,
}

impl GroupReport {
    fn from(g: &GroupStats, cost_per_account: f64) -> Self {
        let attempted = get(&g.deploys_attempted);
        let completed = get(&g.deploys_completed);
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
            completion_pct: percent(completed, attempted),
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
            estimated_cleanup_cost: created.saturating_sub(claimed) as f64 * cost_per_account,
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
    /// Deploys attempted.
    pub deploys_attempted: u64,
    /// Accounts created.
    pub accounts_created: u64,
    /// Accounts claimed.
    pub accounts_claimed: u64,
    /// Client-side latency of all requests through the target.
    pub latency: Latency,
    /// Estimated cleanup cost.
    pub estimated_cleanup_cost: f64,
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
            accounts_created: groups.iter().map(|g| g.accounts_created).sum(),
            accounts_claimed: groups.iter().map(|g| g.accounts_claimed).sum(),
            latency: Latency::from(&run.latency()),
            estimated_cleanup_cost: groups.iter().map(|g| g.estimated_cleanup_cost).sum(),
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
        }
    }

    /// The summary table, as printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "scenario {} | {} | {:.1}s ({}) | {:.1} req/s | latency p50 {:.1} ms p99 {:.1} ms\n\n",
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
            "resources",
            "cleanup*",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
        for g in &self.groups {
            rows.push(vec![
                g.label.clone(),
                g.agents.to_string(),
                g.requests.to_string(),
                g.admitted.to_string(),
                g.refused.to_string(),
                g.errors.to_string(),
                format!("{}/{}", g.deploys_completed, g.deploys_attempted),
                format!("{:.0}", g.completion_pct),
                g.accounts_created.to_string(),
                g.accounts_claimed.to_string(),
                format!(
                    "{}/{}",
                    g.resources_created,
                    g.resources_created + g.resources_refused
                ),
                format!("{:.1}", g.estimated_cleanup_cost),
            ]);
        }
        let t = &self.totals;
        let res_ok: u64 = self.groups.iter().map(|g| g.resources_created).sum();
        let res_no: u64 = self.groups.iter().map(|g| g.resources_refused).sum();
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
            format!("{}/{}", t.deploys_completed, t.deploys_attempted),
            format!("{:.0}", percent(t.deploys_completed, t.deploys_attempted)),
            t.accounts_created.to_string(),
            t.accounts_claimed.to_string(),
            format!("{res_ok}/{}", res_ok + res_no),
            format!("{:.1}", t.estimated_cleanup_cost),
        ]);
        let widths: Vec<usize> = (0..header.len())
            .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        for (i, r) in rows.iter().enumerate() {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, v)| {
                    if c == 0 {
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
        out.push_str(&format!("\n* cleanup: {CLEANUP_COST_BASIS}\n"));
        for g in &self.groups {
            if !g.error_samples.is_empty() {
                out.push_str(&format!(
                    "errors seen by {}: {}\n",
                    g.label,
                    g.error_samples.join("; ")
                ));
            }
        }
        out
    }
}
