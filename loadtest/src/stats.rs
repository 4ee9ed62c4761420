//! Counters shared by the agents of a run.
//!
//! Agents run as many small tasks; they only bump atomics and, per request,
//! take two short locks (latency histogram, per-second timeline). Reports
//! and the progress line read the same counters while the run goes on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::agent::Archetype;

/// Latencies are kept in microseconds, up to this many (a minute).
const MAX_LATENCY_US: u64 = 60_000_000;
/// Distinct error messages kept per group for the report.
const MAX_ERROR_SAMPLES: usize = 8;

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
    latency: Mutex<Histogram<u64>>,
    timeline: Mutex<Vec<[u64; 2]>>,
    error_samples: Mutex<Vec<String>>,
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
            latency: Mutex::new(new_histogram()),
            timeline: Mutex::new(Vec::new()),
            error_samples: Mutex::new(Vec::new()),
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
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_LATENCY_US)
            .clamp(1, MAX_LATENCY_US);
        // Saturating record: a value above the bound is clamped above.
        let _ = group.latency.lock().record(us);
        let _ = self.latency.lock().record(us);
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

    /// Sum of one counter over all groups.
    pub fn total(&self, f: impl Fn(&GroupStats) -> &AtomicU64) -> u64 {
        self.groups.iter().map(|g| get(f(g))).sum()
    }
}
