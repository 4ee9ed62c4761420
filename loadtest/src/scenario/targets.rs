//! The `target` and `network` tables of a scenario: what the agents send
//! to, and how they present their addresses.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
        Target::Url(UrlTarget { url: url.into(), admin_url: None, policy: None })
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
            (Some(url), None) => {
                Ok(Target::Url(UrlTarget { url, admin_url: raw.admin_url, policy: raw.policy }))
            }
            (None, Some(spawn)) => {
                if raw.admin_url.is_some() || raw.policy.is_some() {
                    return Err("target: `admin_url` and `policy` belong to a `url` target; a spawn target sets `policy` under [target.spawn]".into());
                }
                Ok(Target::Spawn(spawn))
            }
            (Some(_), Some(_)) => Err("target: give either `url` or `spawn`, not both".into()),
            (None, None) => {
                Err("target: needs `url = \"http://127.0.0.1:PORT\"` or a [target.spawn] table"
                    .into())
            }
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
            Target::Spawn(s) => {
                RawTarget { url: None, admin_url: None, policy: None, spawn: Some(s) }
            }
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
        Self { forwarded_for: true, bind_source: false }
    }
}
