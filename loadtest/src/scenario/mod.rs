//! Scenario files: what swarm to run, against what, for how long.
//!
//! A scenario is a TOML file read with `deny_unknown_fields` everywhere, so a
//! typo (`cout = 5`) is an error naming the line instead of a silently
//! ignored knob. Semantic checks (positive counts, a loopback target, unique
//! group labels) run after parsing and name the offending group, because a
//! load test that quietly runs something other than what was written is
//! worse than one that refuses to start.//!
//! This module holds the scenario as a whole and its checks; the `target`
//! and `network` tables and the `[[agents]]` groups have submodules.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::loopback::check_loopback_url;

mod group;
mod targets;

pub use group::AgentGroup;
pub use targets::{Network, SpawnTarget, Target, UrlTarget};

/// Longest run a scenario may ask for. Every loop in the tester is bounded
/// by this, so a bad file cannot start an endless run.
pub const MAX_DURATION_SECS: f64 = 3600.0;
/// Most agents one group may hold after scaling.
pub const MAX_AGENTS_PER_GROUP: u32 = 100_000;
/// Hard ceiling on requests per run, whatever the scenario says.
pub const MAX_REQUESTS_CEILING: u64 = 10_000_000;

/// An error in a scenario file, already phrased for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

/// A parsed and checked scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name shown in the report.
    pub name: String,
    /// Free text describing the intent of the run.
    #[serde(default)]
    pub description: String,
    /// Upper bound on the run's wall-clock time; agents still working then
    /// are stopped and counted as they stand.
    pub duration_secs: f64,
    /// Seed for arrivals, addresses and fingerprints, so two runs of one
    /// scenario send the same swarm.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Per-request timeout.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Global cap on requests sent in the run (a second bound besides time).
    #[serde(default = "default_max_requests")]
    pub max_requests: u64,
    /// Cost units the platform pays to clean up one unclaimed account. Used
    /// for the estimated cleanup cost until the gateway exposes a ledger.
    #[serde(default = "default_cleanup_cost")]
    pub cleanup_cost_per_account: f64,
    /// Largest proof-of-work (`k*g`) an agent agrees to solve; wrangler 4.164
    /// refuses above 64,000,000.
    #[serde(default = "default_max_pow")]
    pub max_pow_iterations: u64,
    /// Where traffic goes.
    pub target: Target,
    /// How simulated clients present their addresses.
    #[serde(default)]
    pub network: Network,
    /// The agent groups.
    pub agents: Vec<AgentGroup>,
}

fn default_seed() -> u64 {
    1
}
fn default_request_timeout_ms() -> u64 {
    15_000
}
fn default_max_requests() -> u64 {
    200_000
}
fn default_cleanup_cost() -> f64 {
    1.0
}
fn default_max_pow() -> u64 {
    64_000_000
}

impl Scenario {
    /// Parse and check a scenario from TOML text. `origin` names the file
    /// in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError(format!("{origin}: {e}")))?;
        scenario.validate().map_err(|e| ScenarioError(format!("{origin}: {e}")))?;
        Ok(scenario)
    }

    /// Read, parse and check a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Semantic checks that serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("`name` must not be empty".into());
        }
        if !(self.duration_secs.is_finite()
            && self.duration_secs > 0.0
            && self.duration_secs <= MAX_DURATION_SECS)
        {
            return Err(format!(
                "`duration_secs` must be in (0, {MAX_DURATION_SECS}], got {}",
                self.duration_secs
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err("`request_timeout_ms` must be positive".into());
        }
        if self.max_requests == 0 || self.max_requests > MAX_REQUESTS_CEILING {
            return Err(format!(
                "`max_requests` must be in 1..={MAX_REQUESTS_CEILING}, got {}",
                self.max_requests
            ));
        }
        if !(self.cleanup_cost_per_account.is_finite() && self.cleanup_cost_per_account >= 0.0) {
            return Err("`cleanup_cost_per_account` must be a non-negative number".into());
        }
        match &self.target {
            Target::Url(t) => {
                check_loopback_url(&t.url).map_err(|e| format!("target.url: {e}"))?;
                if let Some(admin) = &t.admin_url {
                    check_loopback_url(admin).map_err(|e| format!("target.admin_url: {e}"))?;
                }
            }
            Target::Spawn(s) => {
                if s.pow_k == 0 || s.pow_g == 0 {
                    return Err("target.spawn: `pow_k` and `pow_g` must be positive".into());
                }
                if u64::from(s.pow_k) * u64::from(s.pow_g) > self.max_pow_iterations {
                    return Err(format!(
                        "target.spawn: pow_k*pow_g = {} exceeds max_pow_iterations = {}",
                        u64::from(s.pow_k) * u64::from(s.pow_g),
                        self.max_pow_iterations
                    ));
                }
                if s.gateway_threads == 0 || s.gateway_threads > 64 {
                    return Err("target.spawn: `gateway_threads` must be in 1..=64".into());
                }
                if !(1..=86_400).contains(&s.account_lifetime_secs) {
                    return Err("target.spawn: `account_lifetime_secs` must be in 1..=86400".into());
                }
                if !(1..=600).contains(&s.sweep_interval_secs) {
                    return Err("target.spawn: `sweep_interval_secs` must be in 1..=600".into());
                }
                if s.settle_secs > 300 {
                    return Err("target.spawn: `settle_secs` is capped at 300".into());
                }
            }
        }
        if self.agents.is_empty() {
            return Err("at least one [[agents]] group is required".into());
        }
        let mut labels = HashSet::new();
        for (i, g) in self.agents.iter().enumerate() {
            let label = g.label();
            let at = format!("agents[{i}] ({label})");
            if !labels.insert(label.clone()) {
                return Err(format!(
                    "{at}: duplicate label; give one of the groups a distinct `label`"
                ));
            }
            if g.count == 0 || g.count > MAX_AGENTS_PER_GROUP {
                return Err(format!(
                    "{at}: `count` must be in 1..={MAX_AGENTS_PER_GROUP}, got {}",
                    g.count
                ));
            }
            if !(g.arrival_per_sec.is_finite() && g.arrival_per_sec > 0.0) {
                return Err(format!(
                    "{at}: `arrival_per_sec` must be a positive number, got {}",
                    g.arrival_per_sec
                ));
            }
            if g.deploys == Some(0) {
                return Err(format!("{at}: `deploys` must be at least 1"));
            }
            if g.max_runs == Some(0) || g.max_requests == Some(0) {
                return Err(format!("{at}: `max_runs` and `max_requests` must be at least 1"));
            }
            if g.queues.unwrap_or(0) > 1000
                || g.kv_namespaces.unwrap_or(0) > 1000
                || g.d1_databases.unwrap_or(0) > 100
                || g.asset_files.unwrap_or(0) > 20_000
            {
                return Err(format!(
                    "{at}: resource counts are capped (queues/kv 1000, d1 100, assets 20000)"
                ));
            }
            if g.retry_delay_ms.unwrap_or(0) > 600_000 {
                return Err(format!("{at}: `retry_delay_ms` is capped at 600000"));
            }
        }
        Ok(())
    }

    /// Multiply every group's agent count by `factor` (rounding up, at
    /// least one agent per group). Arrival rates stay, so a scaled-down run
    /// also finishes its arrivals sooner.
    pub fn scale(&mut self, factor: f64) -> Result<(), ScenarioError> {
        if !(factor.is_finite() && factor > 0.0 && factor <= 100.0) {
            return Err(ScenarioError(format!("--scale must be in (0, 100], got {factor}")));
        }
        for g in &mut self.agents {
            let scaled = (f64::from(g.count) * factor).ceil().max(1.0);
            if scaled > f64::from(MAX_AGENTS_PER_GROUP) {
                return Err(ScenarioError(format!(
                    "group {}: {} agents after scaling exceeds {MAX_AGENTS_PER_GROUP}",
                    g.label(),
                    scaled
                )));
            }
            g.count = scaled as u32;
        }
        Ok(())
    }

    /// Total agents over all groups.
    pub fn total_agents(&self) -> u64 {
        self.agents.iter().map(|g| u64::from(g.count)).sum()
    }
}

/// Find a policy file named relative to the current directory, or to the
/// scenario's folder or any of its parents (so `rules/default.toml` works
/// from anywhere inside the repository).
pub fn resolve_relative(path: &Path, scenario_file: Option<&Path>) -> Option<PathBuf> {
    if path.is_absolute() {
        return path.exists().then(|| path.to_path_buf());
    }
    if let Ok(cwd) = std::env::current_dir() {
        let p = cwd.join(path);
        if p.exists() {
            return Some(p);
        }
    }
    let mut dir = scenario_file
        .and_then(|f| std::fs::canonicalize(f).ok())
        .and_then(|f| f.parent().map(Path::to_path_buf));
    while let Some(d) = dir {
        let p = d.join(path);
        if p.exists() {
            return Some(p);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    None
}
