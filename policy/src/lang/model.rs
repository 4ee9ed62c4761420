//! The compiled policy: every value checked, nothing left to fail at request time.

use crate::economics::accounts::AccountLimits;
use crate::economics::ledger::{Budgets, Costs};
use crate::economics::pow::PowPolicy;
use crate::economics::quota::QuotaSpec;
use crate::lang::client::ClientConfig;
use crate::lang::key::{KeySpec, Missing, Prefixes};
use crate::lang::rate::Rate;
use crate::lang::route::{RouteClass, Routes};
use ipnetwork::IpNetwork;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

/// A compiled, valid policy. Build one with [`crate::compile_str`] or [`crate::compile_file`].
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) client: ClientConfig,
    pub(crate) prefixes: Prefixes,
    pub(crate) tables: Tables,
    pub(crate) routes: Routes,
    pub(crate) lists: Vec<CidrList>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) source_files: Vec<PathBuf>,
    pub(crate) accounts: AccountLimits,
    pub(crate) quotas: QuotaSpec,
    pub(crate) costs: Costs,
    pub(crate) budgets: Budgets,
    pub(crate) pow: PowPolicy,
    pub(crate) fair_share: Option<crate::lang::fair_share::FairShareSpec>,
}

impl Policy {
    /// The policy file and every list file it read, for a file watcher.
    pub fn source_files(&self) -> Vec<PathBuf> {
        self.source_files.clone()
    }

    /// Rule names in evaluation order.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// The `[client]` settings (for the gateway to strip untrusted forwarding headers).
    pub fn client(&self) -> &ClientConfig {
        &self.client
    }

    /// Also believes loopback peers (127.0.0.0/8, ::1) as proxies, whatever
    /// `[client] trusted_proxies` says: for a gateway whose clients are simulated on
    /// one machine (`gateway demo`, the load tester), never for one reached from a
    /// network, where it would let any local process speak for any client.
    pub fn trust_loopback(&mut self) {
        self.client.trust_loopback();
    }

    /// Which route class a request falls in.
    pub fn classify(&self, method: &str, path: &str) -> RouteClass {
        self.routes.classify(method, path)
    }

    /// What a deploy-API call does to the account's resources, with the account-API
    /// prefix taken from this policy's `deploy-write` and `deploy-read` routes (see
    /// [`crate::platform`]).
    pub fn classify_resource(&self, method: &str, path: &str) -> crate::quota::Classified {
        crate::platform::classify_resource(&self.routes, method, path)
    }

    /// `[accounts]`: how many live and recently created temporary accounts one source
    /// may have (the defaults of [`AccountLimits::default`] when the section is absent).
    pub fn account_limits(&self) -> &AccountLimits {
        &self.accounts
    }

    /// `[quotas]`: per-account resource limits, never above the platform's published
    /// ones (the defaults of [`QuotaSpec::default`] when the section is absent).
    pub fn quotas(&self) -> &QuotaSpec {
        &self.quotas
    }

    /// `[costs]`: what an account left unclaimed costs its creator in the ledger.
    pub fn costs(&self) -> &Costs {
        &self.costs
    }

    /// `[budgets]`: how much unclaimed-cleanup debt a source may run up, and what
    /// happens then.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// `[pow]`: how much extra proof-of-work indebted sources solve.
    pub fn pow(&self) -> &PowPolicy {
        &self.pow
    }

    /// Whether a `[fair_share]` ceiling covers requests of `route`.
    pub fn fair_share_covers(&self, route: RouteClass) -> bool {
        self.fair_share.as_ref().is_some_and(|f| f.routes.contains(&route))
    }
}

/// `[tables]`: memory bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tables {
    pub max_keys: usize,
    pub sweep: Duration,
}

/// A named set of networks.
#[derive(Debug, Clone)]
pub(crate) struct CidrList {
    pub name: String,
    pub nets: Vec<IpNetwork>,
}

impl CidrList {
    pub(crate) fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Admit now; later rules are not consulted.
    Allow,
    /// Refuse with 403.
    Deny,
    /// Refuse with 429 when any limit is exceeded, else continue with the next rule.
    Limit,
    /// Evaluate and count, but forward anyway (trying out a rule).
    Shadow,
}

impl Action {
    pub(crate) const NAMES: [&'static str; 4] = ["allow", "deny", "limit", "shadow"];

    /// Name as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Limit => "limit",
            Action::Shadow => "shadow",
        }
    }
}

/// Request conditions; all given must hold, within one any value may.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matcher {
    pub lists: Vec<usize>,
    pub not_lists: Vec<usize>,
    pub routes: Vec<RouteClass>,
    pub methods: Vec<String>,
    pub headers: Vec<String>,
    pub no_headers: Vec<String>,
    /// `account`: `true` for a temporary account the gateway knows, `false` for none
    /// (no token, or a token of no account it knows).
    pub accounts: Vec<bool>,
}

/// What a `limit` rule does when the fleet's shared store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// The gateway's own (per-gateway) limiter decides: available, but each gateway of
    /// the fleet admits up to the limit on its own for as long as the outage lasts.
    #[default]
    Open,
    /// Refused with 503 until the store answers again: never above the shared limit.
    Closed,
}

impl OnStoreError {
    /// The words a policy may write.
    pub(crate) const NAMES: [&'static str; 2] = ["open", "closed"];

    pub(crate) fn parse(text: &str) -> Option<OnStoreError> {
        match text {
            "open" => Some(OnStoreError::Open),
            "closed" => Some(OnStoreError::Closed),
            _ => None,
        }
    }

    /// The word as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            OnStoreError::Open => "open",
            OnStoreError::Closed => "closed",
        }
    }
}

/// One limit of a rule.
#[derive(Debug, Clone)]
pub(crate) struct Limit {
    pub key: KeySpec,
    pub rate: Rate,
    pub burst: NonZeroU32,
    pub cost: NonZeroU32,
    pub missing: Missing,
    pub quota: governor::Quota,
}

/// One compiled `[[rule]]`.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub name: String,
    pub matcher: Matcher,
    pub action: Action,
    pub limits: Vec<Limit>,
    pub message: Option<String>,
    pub advice: Option<String>,
    /// What the rule does when the fleet's shared store is unreachable (the rule's
    /// own setting, else `[store]`'s).
    pub on_store_error: OnStoreError,
}
