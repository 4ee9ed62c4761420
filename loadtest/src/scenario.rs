//! Scenario files: what swarm to run, against what, for how long.
//!
//! A scenario is a TOML file read with `deny_unknown_fields` everywhere, so a
//! typo (`cout = 5`) is an error naming the line instead of a silently
//! ignored knob. Semantic checks (positive counts, a loopback target, unique
//! group labels) run after parsing and name the offending group, because a
//! load test that quietly runs something other than what was written is
//! worse than one that refuses to start.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::archetype::{Archetype, Behaviour};
use crate::loopback::check_loopback_url;

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

/// The system under test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "RawTarget", into = "RawTarget")]
pub enum Target {
    /// An already running gateway (or platform) at this loopback URL.
    Url(UrlTarget),
    /// Start the reference platform in-process and the gateway binary in
    /// front of it, and tear both down at the end.
    Spawn(SpawnTarget),
}

impl Target {
    /// A plain URL target with no admin listener.
    pub fn url(url: impl Into<String>) -> Self {
        Target::Url(UrlTarget {
            url: url.into(),
            admin_url: None,
            policy: None,
        })
    }
}

/// An already running gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UrlTarget {
    /// Where agents send (loopback only).
    pub url: String,
    /// The gateway's admin listener (`[admin] listen`), to read the
    /// cleanup-cost ledger at the end; without it cleanup cost is estimated.
    pub admin_url: Option<String>,
    /// The policy file that gateway enforces, to read its `[budgets]`.
    pub policy: Option<PathBuf>,
}

/// `target` as written: `{ url = ..., admin_url = ..., policy = ... }` or
/// `{ spawn = { ... } }` / `[target.spawn]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admin_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spawn: Option<SpawnTarget>,
}

impl TryFrom<RawTarget> for Target {
    type Error = String;

    fn try_from(raw: RawTarget) -> Result<Self, String> {
        match (raw.url, raw.spawn) {
            (Some(url), None) => Ok(Target::Url(UrlTarget {
                url,
                admin_url: raw.admin_url,
                policy: raw.policy,
            })),
            (None, Some(spawn)) => {
                if raw.admin_url.is_some() || raw.policy.is_some() {
                    return Err("target: `admin_url` and `policy` belong to a `url` target; a spawn target sets `policy` under [target.spawn]".into());
                }
                Ok(Target::Spawn(spawn))
            }
            (Some(_), Some(_)) => Err("target: give either `url` or `spawn`, not both".into()),
            (None, None) => Err("target: needs `url = \"http://127.0.0.1:PORT\"` or a [target.spawn] table".into()),
        }
    }
}

impl From<Target> for RawTarget {
    fn from(t: Target) -> Self {
        match t {
            Target::Url(u) => RawTarget {
                url: Some(u.url),
                admin_url: u.admin_url,
                policy: u.policy,
                spawn: None,
            },
            Target::Spawn(s) => RawTarget {
                url: None,
                admin_url: None,
                policy: None,
                spawn: Some(s),
            },
        }
    }
}

/// Settings for a self-started platform + gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpawnTarget {
    /// Policy file handed to the gateway (relative paths are tried against
    /// the current directory, then the scenario's folder and its parents).
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// Proof-of-work segments the platform asks for; small so a 2-core
    /// machine measures the gateway rather than sha256.
    #[serde(default = "default_pow_k")]
    pub pow_k: u32,
    /// sha256 rounds per segment.
    #[serde(default = "default_pow_g")]
    pub pow_g: u32,
    /// Gateway worker threads.
    #[serde(default = "default_threads")]
    pub gateway_threads: u32,
    /// Lifetime of an unclaimed account on the platform. Short, so accounts
    /// expire (and the gateway's ledger charges them) during the run.
    #[serde(default = "default_lifetime")]
    pub account_lifetime_secs: u64,
    /// How often the platform's sweeper looks for expired accounts.
    #[serde(default = "default_sweep")]
    pub sweep_interval_secs: u64,
    /// At the end, move the platform's clock past every account's expiry so
    /// the accounts still unclaimed (no agent is left to claim them) are
    /// charged now instead of after the run.
    #[serde(default = "yes")]
    pub expire_at_end: bool,
    /// Longest wait at the end for the ledger to hold every account.
    #[serde(default = "default_settle")]
    pub settle_secs: u64,
}

fn default_pow_k() -> u32 {
    2
}
fn default_pow_g() -> u32 {
    256
}
fn default_threads() -> u32 {
    1
}
fn default_lifetime() -> u64 {
    25
}
fn default_sweep() -> u64 {
    1
}
fn default_settle() -> u64 {
    10
}

/// How simulated clients present their addresses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Send `X-Forwarded-For` with each agent's simulated address (the
    /// gateway must trust it from loopback for this to mean anything).
    #[serde(default = "yes")]
    pub forwarded_for: bool,
    /// Also bind each agent's sockets to its own address in 127.0.0.0/8, so
    /// the peer address differs per agent even without `X-Forwarded-For`.
    #[serde(default)]
    pub bind_source: bool,
}

fn yes() -> bool {
    true
}

impl Default for Network {
    fn default() -> Self {
        Self {
            forwarded_for: true,
            bind_source: false,
        }
    }
}

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
        self.label
            .clone()
            .unwrap_or_else(|| self.archetype.name().to_string())
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

impl Scenario {
    /// Parse and check a scenario from TOML text. `origin` names the file
    /// in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError(format!("{origin}: {e}")))?;
        scenario
            .validate()
            .map_err(|e| ScenarioError(format!("{origin}: {e}")))?;
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
                return Err(format!(
                    "{at}: `max_runs` and `max_requests` must be at least 1"
                ));
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
            return Err(ScenarioError(format!(
                "--scale must be in (0, 100], got {factor}"
            )));
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
