//! Counters shared by the agents of a run.
//!
//! Agents run as many small tasks; they only bump atomics and, per request,
//! take two short locks (latency histogram, per-second timeline). Reports
//! and the progress line read the same counters while the run goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::archetype::Archetype;

/// Latencies are kept in microseconds, up to this many (a minute).
const MAX_LATENCY_US: u64 = 60_000_000;
/// Distinct error messages kept per group for the report.
const MAX_ERROR_SAMPLES: usize = 8;
/// Distinct refusal reasons counted per group (the rest go to "other").
const MAX_REFUSAL_REASONS: usize = 24;
/// Accounts remembered per group (for ledger attribution).
const MAX_ACCOUNT_RECORDS: usize = 1_000_000;

/// An account an agent created: its id (not a secret; the ledger names it
/// too), when, and whether the agent claimed it. Tokens and claim URLs are
/// never kept here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The platform's account id.
    pub id: String,
    /// Unix seconds when the platform answered the creation.
    pub created_unix: u64,
    /// Claimed by its agent.
    pub claimed: bool,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants (1 us..60 s, 3 significant digits), which
    // hdrhistogram always accepts; no input can reach this error.
    match Histogram::new_with_bounds(1, MAX_LATENCY_US, 3) {
        Ok(h) => h,
        Err(e) => unreachable!("constant histogram bounds rejected: {e}"),
    }
}

/// What a response meant for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The request got through to the platform (whatever it answered).
    Admitted,
    /// Refused by policy: 429, 403 other than an auth failure, 451, or 503
    /// with `Retry-After`.
    Refused,
    /// Transport error, timeout, or a server error.
    Error,
}

/// Counters of one agent group.
pub struct GroupStats {
    /// Label of the group.
    pub label: String,
    /// Archetype of its agents.
    pub archetype: Archetype,
    /// Agents in the group (after scaling).
    pub agents: u64,
    /// Agents that have started.
    pub agents_started: AtomicU64,
    /// Agents that have stopped.
    pub agents_finished: AtomicU64,
    /// Agents that reached all their deploys.
    pub agents_succeeded: AtomicU64,
    /// Requests sent.
    pub requests: AtomicU64,
    /// Requests admitted.
    pub admitted: AtomicU64,
    /// Requests refused.
    pub refused: AtomicU64,
    /// Requests that failed.
    pub errors: AtomicU64,
    /// Deploy runs started.
    pub deploys_attempted: AtomicU64,
    /// Deploy runs completed.
    pub deploys_completed: AtomicU64,
    /// Accounts created.
    pub accounts_created: AtomicU64,
    /// Claims attempted.
    pub claims_attempted: AtomicU64,
    /// Accounts claimed.
    pub accounts_claimed: AtomicU64,
    /// Resources (KV, D1, queues, asset files) created.
    pub resources_created: AtomicU64,
    /// Resource creations refused or failed.
    pub resources_refused: AtomicU64,
    /// Proofs of work solved.
    pub pow_solved: AtomicU64,
    /// Time spent solving them.
    pub pow_micros: AtomicU64,
    /// Deploys the started agents wanted (agents started x deploys each).
    pub deploys_wanted: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    refused_latency: Mutex<Histogram<u64>>,
    accounts: Mutex<Vec<AccountRecord>>,
    refusal_reasons: Mutex<BTreeMap<String, u64>>,
    timeline: Mutex<Vec<[u64; 2]>>,
    error_samples: Mutex<Vec<String>>,
    findings: Mutex<BTreeMap<String, u64>>,
    networks: Mutex<BTreeSet<String>>,
    windows: Mutex<Vec<AgentWindow>>,
}

/// When one agent ran and what it achieved, in milliseconds since the
/// run's start: lets a check ask how the agents that ran *during* an
/// attack fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentWindow {
    /// Started.
    pub from_ms: u64,
    /// Finished.
    pub until_ms: u64,
    /// Deploys wanted.
    pub wanted: u64,
    /// Deploys completed.
    pub completed: u64,
}

impl GroupStats {
    /// Empty counters for a group.
    pub fn new(label: String, archetype: Archetype, agents: u64) -> Self {
        Self {
            label,
            archetype,
            agents,
            agents_started: AtomicU64::new(0),
            agents_finished: AtomicU64::new(0),
            agents_succeeded: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            deploys_attempted: AtomicU64::new(0),
            deploys_completed: AtomicU64::new(0),
            accounts_created: AtomicU64::new(0),
            claims_attempted: AtomicU64::new(0),
            accounts_claimed: AtomicU64::new(0),
            resources_created: AtomicU64::new(0),
            resources_refused: AtomicU64::new(0),
            pow_solved: AtomicU64::new(0),
            pow_micros: AtomicU64::new(0),
            deploys_wanted: AtomicU64::new(0),
            latency: Mutex::new(new_histogram()),
            refused_latency: Mutex::new(new_histogram()),
            accounts: Mutex::new(Vec::new()),
            refusal_reasons: Mutex::new(BTreeMap::new()),
            timeline: Mutex::new(Vec::new()),
            error_samples: Mutex::new(Vec::new()),
            findings: Mutex::new(BTreeMap::new()),
            networks: Mutex::new(BTreeSet::new()),
            windows: Mutex::new(Vec::new()),
        }
    }

    /// Count one event counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Keep a (secret-free) error message as an example for the report.
    pub fn note_error(&self, message: String) {
        let mut s = self.error_samples.lock();
        if s.len() < MAX_ERROR_SAMPLES && !s.contains(&message) {
            s.push(message);
        }
    }

    /// Example error messages.
    pub fn error_samples(&self) -> Vec<String> {
        self.error_samples.lock().clone()
    }

    /// Latency histogram (copy).
    pub fn latency(&self) -> Histogram<u64> {
        self.latency.lock().clone()
    }

    /// Latency of refused requests only: answered by the gateway itself,
    /// without the platform (copy).
    pub fn refused_latency(&self) -> Histogram<u64> {
        self.refused_latency.lock().clone()
    }

    /// Remember an account this group created.
    pub fn record_account(&self, id: &str) {
        let mut a = self.accounts.lock();
        if a.len() < MAX_ACCOUNT_RECORDS {
            a.push(AccountRecord { id: id.to_string(), created_unix: unix_now(), claimed: false });
        }
    }

    /// Mark an account of this group claimed.
    pub fn mark_claimed(&self, id: &str) {
        if let Some(r) = self.accounts.lock().iter_mut().rev().find(|r| r.id == id) {
            r.claimed = true;
        }
    }

    /// Accounts this group created (copy).
    pub fn accounts(&self) -> Vec<AccountRecord> {
        self.accounts.lock().clone()
    }

    /// Count one refusal under a short reason (secret-free).
    pub fn note_refusal(&self, reason: String) {
        let mut r = self.refusal_reasons.lock();
        if r.len() < MAX_REFUSAL_REASONS || r.contains_key(&reason) {
            *r.entry(reason).or_insert(0) += 1;
        } else {
            *r.entry("other".to_string()).or_insert(0) += 1;
        }
    }

    /// Refusals by reason (copy).
    pub fn refusal_reasons(&self) -> BTreeMap<String, u64> {
        self.refusal_reasons.lock().clone()
    }

    /// Add `n` to a named attack observation (what an attack agent saw:
    /// accounts obtained by cheating, bodies the target accepted, ...).
    pub fn add_finding(&self, name: &str, n: u64) {
        *self.findings.lock().entry(name.to_string()).or_insert(0) += n;
    }

    /// Attack observations (copy).
    pub fn findings(&self) -> BTreeMap<String, u64> {
        self.findings.lock().clone()
    }

    /// Remember a network (such as an IPv4 /24) the group sent from.
    pub fn note_network(&self, net: String) {
        let mut n = self.networks.lock();
        if n.len() < MAX_ACCOUNT_RECORDS {
            n.insert(net);
        }
    }

    /// Distinct networks the group sent from.
    pub fn networks(&self) -> u64 {
        self.networks.lock().len() as u64
    }

    /// Record when one agent ran and how it did.
    pub fn record_window(&self, w: AgentWindow) {
        let mut ws = self.windows.lock();
        if ws.len() < MAX_ACCOUNT_RECORDS {
            ws.push(w);
        }
    }

    /// Every agent's window (copy).
    pub fn windows(&self) -> Vec<AgentWindow> {
        self.windows.lock().clone()
    }

    /// Per-second `[admitted, refused]` counts since the run's start.
    pub fn timeline(&self) -> Vec<[u64; 2]> {
        self.timeline.lock().clone()
    }
}

/// Read an atomic counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Counters of the whole run.
pub struct RunStats {
    /// When the run started.
    pub start: Instant,
    /// Per-group counters, in scenario order.
    pub groups: Vec<Arc<GroupStats>>,
    /// Requests sent by everyone (checked against the cap).
    sent: AtomicU64,
    /// Cap on requests for the run.
    pub max_requests: u64,
    latency: Mutex<Histogram<u64>>,
    refused_latency: Mutex<Histogram<u64>>,
}

impl RunStats {
    /// Counters for a run starting now.
    pub fn new(groups: Vec<Arc<GroupStats>>, max_requests: u64) -> Self {
        Self {
            start: Instant::now(),
            groups,
            sent: AtomicU64::new(0),
            max_requests,
            latency: Mutex::new(new_histogram()),
            refused_latency: Mutex::new(new_histogram()),
        }
    }

    /// Reserve one request from the run's budget; false once it is spent.
    pub fn take_request(&self) -> bool {
        self.sent.fetch_add(1, Ordering::Relaxed) < self.max_requests
    }

    /// True once the request budget is spent.
    pub fn budget_spent(&self) -> bool {
        self.sent.load(Ordering::Relaxed) >= self.max_requests
    }

    /// Record one finished request of `group`.
    pub fn record(&self, group: &GroupStats, verdict: Verdict, latency: Duration) {
        GroupStats::bump(&group.requests);
        match verdict {
            Verdict::Admitted => GroupStats::bump(&group.admitted),
            Verdict::Refused => GroupStats::bump(&group.refused),
            Verdict::Error => GroupStats::bump(&group.errors),
        }
        let us =
            u64::try_from(latency.as_micros()).unwrap_or(MAX_LATENCY_US).clamp(1, MAX_LATENCY_US);
        // Saturating record: a value above the bound is clamped above.
        let _ = group.latency.lock().record(us);
        let _ = self.latency.lock().record(us);
        if verdict == Verdict::Refused {
            let _ = group.refused_latency.lock().record(us);
            let _ = self.refused_latency.lock().record(us);
        }
        let second = usize::try_from(self.start.elapsed().as_secs()).unwrap_or(usize::MAX);
        if second < 4 * 3600 {
            let mut t = group.timeline.lock();
            if t.len() <= second {
                t.resize(second + 1, [0, 0]);
            }
            match verdict {
                Verdict::Admitted => t[second][0] += 1,
                Verdict::Refused => t[second][1] += 1,
                Verdict::Error => {}
            }
        }
    }

    /// Latency histogram of all requests (copy).
    pub fn latency(&self) -> Histogram<u64> {
        self.latency.lock().clone()
    }

    /// Latency histogram of refused requests (copy).
    pub fn refused_latency(&self) -> Histogram<u64> {
        self.refused_latency.lock().clone()
    }

    /// Sum of one counter over all groups.
    pub fn total(&self, f: impl Fn(&GroupStats) -> &AtomicU64) -> u64 {
        self.groups.iter().map(|g| get(f(g))).sum()
    }
}
