//! The `[[agents]]` groups of a scenario, and how a group's settings
//! override its archetype's defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::archetype::{Archetype, Behaviour};

/// One group of agents of one archetype. Everything but `archetype`,
/// `count` and `arrival_per_sec` overrides the archetype's default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentGroup {
    /// Behaviour of the agents.
    pub archetype: Archetype,
    /// Label in reports; defaults to the archetype name. Lets a scenario
    /// hold two groups of one archetype with different settings.
    #[serde(default)]
    pub label: Option<String>,
    /// Number of agents.
    pub count: u32,
    /// Mean arrivals per second (Poisson); the group's agents start over
    /// roughly `count / arrival_per_sec` seconds.
    pub arrival_per_sec: f64,
    /// Successful deploys each agent wants.
    #[serde(default)]
    pub deploys: Option<u32>,
    /// Deploy runs each agent may start, successful or not.
    #[serde(default)]
    pub max_runs: Option<u32>,
    /// Requests one agent may send in total.
    #[serde(default)]
    pub max_requests: Option<u32>,
    /// Wait as long as `Retry-After` says before retrying.
    #[serde(default)]
    pub honour_retry_after: Option<bool>,
    /// Claim the account after deploying.
    #[serde(default)]
    pub claim: Option<bool>,
    /// Start every run from a fresh account (wiped wrangler cache).
    #[serde(default)]
    pub fresh_account_per_run: Option<bool>,
    /// KV namespaces to create per account.
    #[serde(default)]
    pub kv_namespaces: Option<u32>,
    /// D1 databases to create per account.
    #[serde(default)]
    pub d1_databases: Option<u32>,
    /// Queues to create per account.
    #[serde(default)]
    pub queues: Option<u32>,
    /// Static-asset files to upload per account.
    #[serde(default)]
    pub asset_files: Option<u32>,
    /// Delay between retries when not honouring `Retry-After`.
    #[serde(default)]
    pub retry_delay_ms: Option<u64>,
}

impl AgentGroup {
    /// The label used in reports.
    pub fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| self.archetype.name().to_string())
    }
}

/// Defined beside [`AgentGroup`], whose fields are the overrides, so the
/// archetypes need not know the scenario format.
impl Behaviour {
    /// The archetype's defaults with the group's overrides applied.
    pub fn for_group(g: &AgentGroup) -> Self {
        let mut b = g.archetype.behaviour();
        if let Some(v) = g.deploys {
            b.deploys = v;
            b.max_runs = b.max_runs.max(v);
        }
        if let Some(v) = g.max_runs {
            b.max_runs = v;
        }
        if let Some(v) = g.max_requests {
            b.max_requests = v;
        }
        if let Some(v) = g.honour_retry_after {
            b.honour_retry_after = v;
        }
        if let Some(v) = g.claim {
            b.claim = v;
        }
        if let Some(v) = g.fresh_account_per_run {
            b.fresh_account_per_run = v;
        }
        if let Some(v) = g.kv_namespaces {
            b.kv_namespaces = v;
        }
        if let Some(v) = g.d1_databases {
            b.d1_databases = v;
        }
        if let Some(v) = g.queues {
            b.queues = v;
        }
        if let Some(v) = g.asset_files {
            b.asset_files = v;
        }
        if let Some(v) = g.retry_delay_ms {
            b.retry_delay = Duration::from_millis(v);
        }
        b
    }
}
