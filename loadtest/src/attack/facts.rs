//! What the attack checks need beyond the counters, gathered once at the
//! end of a run: the policy's limits, what the platform says each
//! quota-evader account holds, and how honest agents fared while a botnet
//! was active.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::limits::PolicyLimits;
use crate::archetype::Archetype;
use crate::stats::{AgentWindow, RunStats};

/// What one account holds (or held when it was cleaned up), by the
/// platform's own count: the larger of its live snapshot and its cleanup
/// records, field by field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Holdings {
    /// Worker scripts.
    pub scripts: u64,
    /// KV namespaces.
    pub kv_namespaces: u64,
    /// D1 databases.
    pub d1_databases: u64,
    /// Queues.
    pub queues: u64,
    /// Distinct static-asset files.
    pub asset_files: u64,
    /// Bytes of static-asset files.
    pub asset_bytes: u64,
}

impl Holdings {
    fn max(self, c: &refplatform::ResourceCounts) -> Self {
        Self {
            scripts: self.scripts.max(c.scripts),
            kv_namespaces: self.kv_namespaces.max(c.kv_namespaces),
            d1_databases: self.d1_databases.max(c.d1_databases),
            queues: self.queues.max(c.queues),
            asset_files: self.asset_files.max(c.asset_files),
            asset_bytes: self.asset_bytes.max(c.asset_bytes),
        }
    }
}

/// Honest deploys by the well-behaved agents that ran while an attack
/// group was active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HonestDuring {
    /// Well-behaved agents whose run overlapped the attack.
    pub agents: u64,
    /// Deploys they wanted.
    pub wanted: u64,
    /// Deploys they completed.
    pub completed: u64,
}

impl HonestDuring {
    /// Of `honest` windows, those overlapping the span of `attack` windows.
    pub fn overlapping(attack: &[AgentWindow], honest: &[AgentWindow]) -> Self {
        let (Some(from), Some(until)) =
            (attack.iter().map(|w| w.from_ms).min(), attack.iter().map(|w| w.until_ms).max())
        else {
            return Self::default();
        };
        let mut out = Self::default();
        for w in honest.iter().filter(|w| w.from_ms <= until && w.until_ms >= from) {
            out.agents += 1;
            out.wanted += w.wanted;
            out.completed += w.completed;
        }
        out
    }
}

/// The facts of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttackFacts {
    /// The policy's limits, when the policy could be read.
    pub policy: Option<PolicyLimits>,
    /// Why it could not.
    pub policy_error: Option<String>,
    /// Per quota-evader group label: each account's holdings by the
    /// platform's count (`None`: the platform was not the tester's own).
    pub holdings: Option<BTreeMap<String, Vec<Holdings>>>,
    /// Per botnet group label: the honest agents that ran meanwhile.
    pub honest_during: BTreeMap<String, HonestDuring>,
}

/// Gather the facts at the end of a run.
pub fn collect(
    run: &RunStats,
    policy: Option<&Path>,
    platform: Option<Arc<refplatform::Platform>>,
) -> AttackFacts {
    let mut facts = AttackFacts::default();
    match policy.map(PolicyLimits::from_policy) {
        Some(Ok(p)) => facts.policy = Some(p),
        Some(Err(e)) => facts.policy_error = Some(e),
        None => facts.policy_error = Some("no policy file known for the target".into()),
    }
    if let Some(p) = platform {
        let cleanups = p.cleanup_log();
        let mut by_group = BTreeMap::new();
        for g in run.groups.iter().filter(|g| g.archetype == Archetype::QuotaEvader) {
            let held: Vec<Holdings> = g
                .accounts()
                .iter()
                .map(|a| {
                    let mut h = Holdings::default();
                    if let Some(s) = p.account(&a.id) {
                        h = h.max(&s.counts);
                    }
                    for c in cleanups.iter().filter(|c| c.account_id == a.id) {
                        h = h.max(&c.removed);
                    }
                    h
                })
                .collect();
            by_group.insert(g.label.clone(), held);
        }
        facts.holdings = Some(by_group);
    }
    let honest: Vec<AgentWindow> = run
        .groups
        .iter()
        .filter(|g| g.archetype == Archetype::WellBehaved)
        .flat_map(|g| g.windows())
        .collect();
    for g in run.groups.iter().filter(|g| g.archetype == Archetype::Botnet) {
        facts
            .honest_during
            .insert(g.label.clone(), HonestDuring::overlapping(&g.windows(), &honest));
    }
    facts
}
