//! Per-group figures of a report, read from the group's counters, and the
//! latency summary they share with the totals.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::ledger::GroupCleanup;
use crate::stats::{get, GroupStats};

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
    /// What attack agents observed, by name (see `attack`).
    pub findings: BTreeMap<String, u64>,
    /// Distinct IPv4 /24s the group sent from.
    pub networks_24: u64,
}

impl GroupReport {
    /// The group's figures from its counters, with the client-side cleanup
    /// estimate (the ledger, when read, replaces it).
    pub(super) fn from(g: &GroupStats, cost_per_account: f64) -> Self {
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
            findings: g.findings(),
            networks_24: g.networks(),
        }
    }
}

/// `part` of `whole` in percent; 0 when `whole` is 0.
pub(super) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}
