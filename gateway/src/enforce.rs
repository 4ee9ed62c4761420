//! What the request stages work with: the policy engine, the account tracker and the
//! clock, loaded once at start and shared by every request.
//!
//! Without a policy file the gateway forwards everything ([`Enforcer::passthrough`]);
//! with one, every request runs the stages of [`crate::stage`].

use std::path::Path;
use std::sync::Arc;

use policy::Engine;

use crate::clock::{SharedClock, SystemClock};
use crate::fleet::conn::Redis;
use crate::fleet::limits::FleetLimits;
use crate::reload::PolicySource;
use crate::tracker::Tracker;

/// The loaded policy and the state it keeps.
pub struct Loaded {
    /// The policy engine (rate limits, lists; holds the policy in force).
    pub engine: Arc<Engine>,
    /// Temporary accounts, their quotas, the ledger and the challenge book.
    pub tracker: Arc<Tracker>,
}

/// Applies the policy to requests and accounts for their answers.
pub struct Enforcer {
    loaded: Option<Loaded>,
    clock: SharedClock,
    redis: Option<Arc<Redis>>,
    fleet_limits: Option<Arc<FleetLimits>>,
}

impl Enforcer {
    /// An enforcer that forwards everything (no policy configured).
    pub fn passthrough() -> Self {
        Enforcer { loaded: None, clock: SystemClock::shared(), redis: None, fleet_limits: None }
    }

    /// Loads and compiles the policy file; errors are located (`FILE:LINE:COL: ...`).
    /// `ledger_file`, when given, persists the cleanup-cost ledger (JSON lines);
    /// `journal_file` the account book (who created which account).
    pub fn from_policy_file(
        path: &Path,
        ledger_file: Option<std::path::PathBuf>,
        journal_file: Option<std::path::PathBuf>,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let source = PolicySource { path: path.to_path_buf(), trust_loopback: false };
        Self::from_source(&source, ledger_file, journal_file, clock)
    }

    /// [`Enforcer::from_policy_file`] for a [`PolicySource`] (its loopback trust too).
    pub fn from_source(
        source: &PolicySource,
        ledger_file: Option<std::path::PathBuf>,
        journal_file: Option<std::path::PathBuf>,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let compiled = source.compile().map_err(|e| format!("invalid policy:\n{e}"))?;
        let tracker = Tracker::new(&compiled, ledger_file, journal_file)
            .map_err(|e| format!("cannot open the ledger or the account journal: {e}"))?;
        Ok(Self::with_policy(compiled, tracker, clock))
    }

    /// [`Enforcer::from_source`] whose tracker reads its state back from the embedded
    /// store and writes it through (`[store] path`).
    pub fn from_source_with_store(
        source: &PolicySource,
        store: Arc<crate::store::Embedded>,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let compiled = source.compile().map_err(|e| format!("invalid policy:\n{e}"))?;
        let tracker = Tracker::new(&compiled, None, None)
            .map_err(|e| e.to_string())
            .and_then(|t| t.with_store(store).map_err(|e| e.to_string()))
            .map_err(|e| format!("cannot read the state back from the store: {e}"))?;
        Ok(Self::with_policy(compiled, tracker, clock))
    }

    /// An enforcer for a compiled policy (tests build one on a manual clock).
    pub fn with_policy(policy: policy::Policy, tracker: Tracker, clock: SharedClock) -> Self {
        Enforcer {
            loaded: Some(Loaded {
                engine: Arc::new(Engine::new(policy)),
                tracker: Arc::new(tracker),
            }),
            clock,
            redis: None,
            fleet_limits: None,
        }
    }

    /// Shares state with the fleet through `redis` (`[store] redis`), when given: from
    /// now on the policy's rate limits are counted there.
    pub fn with_redis(mut self, redis: Option<Arc<Redis>>) -> Self {
        self.fleet_limits = redis.as_ref().map(|r| FleetLimits::new(r.clone()));
        self.redis = redis;
        self
    }

    /// The fleet's Redis, when `[store] redis` is configured.
    pub fn redis(&self) -> Option<&Arc<Redis>> {
        self.redis.as_ref()
    }

    /// The rate limits shared through the fleet's Redis, when configured.
    pub fn fleet_limits(&self) -> Option<&Arc<FleetLimits>> {
        self.fleet_limits.as_ref()
    }

    /// The engine and tracker, when a policy is loaded.
    pub fn loaded(&self) -> Option<&Loaded> {
        self.loaded.as_ref()
    }

    /// The engine, when a policy is loaded.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.loaded.as_ref().map(|l| &l.engine)
    }

    /// The account tracker, when a policy is loaded.
    pub fn tracker(&self) -> Option<&Arc<Tracker>> {
        self.loaded.as_ref().map(|l| &l.tracker)
    }

    /// The clock every stage and handler reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Unix seconds now, on the gateway's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }
}
