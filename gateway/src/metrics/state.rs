//! The families read from the gateway's long-lived state when they are collected:
//! the engine's rule counters and tables, the tracker's accounts, ledger and
//! proof-of-work counts, the fair-share ceiling and the store's health.
//!
//! One table, [`FAMILIES`], serves both outputs: `/metrics` encodes it with
//! prometheus-client ([`super::render`]) and OpenTelemetry observes it through
//! callbacks ([`crate::telemetry`]), so the two always carry the same numbers. Label
//! values are rule names, limit names (rule and key expression, both from the policy)
//! and fixed words: bounded by the policy, never a client's address, token or account.

use std::sync::Arc;

use policy::Engine;

use crate::fleet::conn::Health;
use crate::tracker::Tracker;

/// Whether a family counts up (a counter) or goes up and down (a gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (until the process restarts).
    Counter,
    /// Any value now.
    Gauge,
}

/// One value of a family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A whole number (counts, sizes).
    Int(i64),
    /// A fraction (the fair-share window's decayed admissions).
    Float(f64),
}

impl Value {
    /// The value as a float (OpenTelemetry gauges are observed as `f64`).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        }
    }
}

/// One labelled value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names and values (bounded: see the module doc).
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: Value,
}

impl Sample {
    fn plain(value: Value) -> Self {
        Sample { labels: Vec::new(), value }
    }
}

/// What a family is read from.
pub struct Sources<'a> {
    /// The rate-limit engine.
    pub engine: &'a Engine,
    /// Accounts, ledger, proof-of-work, held bytes.
    pub tracker: &'a Tracker,
    /// Unix seconds now on the gateway's clock (which accounts are live).
    pub now: u64,
    /// The fleet store's health, when a Redis is configured and registered.
    pub store: Option<&'a Health>,
}

/// A family whose values are read from [`Sources`] when collected.
pub struct StateFamily {
    /// The Prometheus name; counters without `_total`, which the encoder appends.
    pub name: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Reads its samples; an empty result leaves the family out (a section the
    /// policy does not have).
    pub read: fn(&Sources<'_>) -> Vec<Sample>,
}

/// Every state family, in the order `/metrics` prints them.
pub const FAMILIES: &[StateFamily] = &[
    StateFamily {
        name: "gateway_rule_requests",
        help: "Requests a policy rule matched, by outcome (allowed, refused, shadow_refused).",
        kind: Kind::Counter,
        read: rule_requests,
    },
    StateFamily {
        name: "gateway_limit_keys",
        help: "Keys tracked by a limit's table.",
        kind: Kind::Gauge,
        read: |s| tables(s, |t| t.keys as i64),
    },
    StateFamily {
        name: "gateway_limit_overflow",
        help: "Requests counted in a full table's shared overflow bucket.",
        kind: Kind::Counter,
        read: |s| tables(s, |t| t.overflowed as i64),
    },
    StateFamily {
        name: "gateway_limit_evictions",
        help: "Idle keys a limit table's sweep dropped.",
        kind: Kind::Counter,
        read: |s| tables(s, |t| t.evicted as i64),
    },
    StateFamily {
        name: "gateway_cleanup_units_total",
        help: "Net cleanup-cost units in the ledger (claims credit them back, so it can fall).",
        kind: Kind::Gauge,
        read: |s| vec![Sample::plain(Value::Int(s.tracker.ledger().total(0).0))],
    },
    StateFamily {
        name: "gateway_cleanup_accounts_total",
        help: "Accounts with a ledger entry (old entries are forgotten, so it can fall).",
        kind: Kind::Gauge,
        read: |s| vec![Sample::plain(Value::Int(s.tracker.ledger().total(0).1 as i64))],
    },
    StateFamily {
        name: "gateway_blocks_active",
        help: "Operator blocks in force (addresses, networks, fingerprints).",
        kind: Kind::Gauge,
        read: |s| vec![Sample::plain(Value::Int(s.tracker.blocks().list(s.now).len() as i64))],
    },
    StateFamily {
        name: "gateway_block_refusals",
        help: "Requests refused by an operator block.",
        kind: Kind::Counter,
        read: |s| vec![Sample::plain(Value::Int(s.tracker.blocks().refused_total() as i64))],
    },
    StateFamily {
        name: "gateway_accounts_tracked",
        help: "Temporary accounts the gateway knows.",
        kind: Kind::Gauge,
        read: |s| vec![Sample::plain(Value::Int(s.tracker.book().len() as i64))],
    },
    StateFamily {
        name: "gateway_accounts",
        help: "Temporary accounts the gateway knows, by state (live, claimed, expired, deleted).",
        kind: Kind::Gauge,
        read: accounts_by_state,
    },
    StateFamily {
        name: "gateway_pow_verifies",
        help: "Verifications of extra proof-of-work segments.",
        kind: Kind::Counter,
        read: |s| vec![Sample::plain(Value::Int(s.tracker.pow_cost().0 as i64))],
    },
    StateFamily {
        name: "gateway_pow_verify_hashes",
        help: "SHA-256 rounds spent on those verifications.",
        kind: Kind::Counter,
        read: |s| vec![Sample::plain(Value::Int(s.tracker.pow_cost().1 as i64))],
    },
    StateFamily {
        name: "gateway_pow_challenges_remembered",
        help: "Challenges in the challenge book (issued, not yet redeemed or expired).",
        kind: Kind::Gauge,
        read: |s| vec![Sample::plain(Value::Int(s.tracker.challenges().len() as i64))],
    },
    StateFamily {
        name: "gateway_held_body_bytes",
        help: "Request-body bytes the gateway holds now.",
        kind: Kind::Gauge,
        read: |s| vec![Sample::plain(Value::Int(s.tracker.held().held() as i64))],
    },
    StateFamily {
        name: "gateway_upload_sessions",
        help: "Asset-upload sessions the gateway tracks.",
        kind: Kind::Gauge,
        read: |s| vec![Sample::plain(Value::Int(s.tracker.uploads().len() as i64))],
    },
    StateFamily {
        name: "gateway_fair_share_admitted",
        help: "Admissions counted in the fair-share window now.",
        kind: Kind::Gauge,
        read: |s| fair(s, |f| Value::Float(f.admitted_in_window)),
    },
    StateFamily {
        name: "gateway_fair_share_ceiling",
        help: "The fair-share ceiling per window.",
        kind: Kind::Gauge,
        read: |s| fair(s, |f| Value::Int(f.ceiling as i64)),
    },
    StateFamily {
        name: "gateway_fair_share_networks",
        help: "Networks active in the fair-share window.",
        kind: Kind::Gauge,
        read: |s| fair(s, |f| Value::Int(f.networks as i64)),
    },
    StateFamily {
        name: "gateway_fair_share_refused",
        help: "Requests the fair-share ceiling refused.",
        kind: Kind::Counter,
        read: |s| fair(s, |f| Value::Int(f.refused as i64)),
    },
    StateFamily {
        name: "gateway_fair_share_overflow",
        help: "Requests counted in the full network table's shared entry.",
        kind: Kind::Counter,
        read: |s| fair(s, |f| Value::Int(f.overflowed as i64)),
    },
    StateFamily {
        name: "gateway_store_up",
        help: "1 when the fleet store's last call succeeded, else 0.",
        kind: Kind::Gauge,
        read: |s| store(s, |h| i64::from(h.is_up())),
    },
    StateFamily {
        name: "gateway_store_calls",
        help: "Calls made to the fleet store.",
        kind: Kind::Counter,
        read: |s| store(s, |h| h.calls() as i64),
    },
    StateFamily {
        name: "gateway_store_errors",
        help: "Fleet store calls that failed (timeouts, refused connections, script errors).",
        kind: Kind::Counter,
        read: |s| store(s, |h| h.errors() as i64),
    },
];

fn rule_requests(s: &Sources<'_>) -> Vec<Sample> {
    let stats = s.engine.stats();
    let mut out = Vec::with_capacity(stats.rules.len() * 3);
    for r in &stats.rules {
        for (outcome, v) in
            [("allowed", r.allowed), ("refused", r.refused), ("shadow_refused", r.shadow_refused)]
        {
            out.push(Sample {
                labels: vec![("rule", r.name.clone()), ("outcome", outcome.to_string())],
                value: Value::Int(v as i64),
            });
        }
    }
    out
}

fn tables(s: &Sources<'_>, value: fn(&policy::TableStats) -> i64) -> Vec<Sample> {
    s.engine
        .stats()
        .tables
        .iter()
        .map(|t| Sample { labels: vec![("limit", t.limit.clone())], value: Value::Int(value(t)) })
        .collect()
}

fn accounts_by_state(s: &Sources<'_>) -> Vec<Sample> {
    let counts = s.tracker.book().count_by_state(s.now);
    ["live", "claimed", "expired", "deleted"]
        .iter()
        .zip(counts)
        .map(|(state, n)| Sample {
            labels: vec![("state", state.to_string())],
            value: Value::Int(n as i64),
        })
        .collect()
}

fn fair(s: &Sources<'_>, value: fn(&policy::FairShareStats) -> Value) -> Vec<Sample> {
    s.engine.fair_share_stats().map(|f| vec![Sample::plain(value(&f))]).unwrap_or_default()
}

fn store(s: &Sources<'_>, value: fn(&Health) -> i64) -> Vec<Sample> {
    s.store.map(|h| vec![Sample::plain(Value::Int(value(h)))]).unwrap_or_default()
}

/// The fleet store's health, once registered ([`register_store_health`]).
static STORE_HEALTH: std::sync::OnceLock<Arc<Health>> = std::sync::OnceLock::new();

/// Makes the fleet store's health counters part of the metrics (`gateway_store_up`,
/// `gateway_store_calls_total`, `gateway_store_errors_total`). Whoever connects the
/// fleet's Redis ([`crate::fleet::conn::Redis::health`]) calls it once; a second call
/// is ignored, because one gateway has one store.
pub fn register_store_health(health: Arc<Health>) {
    let _ = STORE_HEALTH.set(health);
}

/// The registered store health, if any.
pub(crate) fn store_health() -> Option<&'static Health> {
    STORE_HEALTH.get().map(|h| &**h)
}
