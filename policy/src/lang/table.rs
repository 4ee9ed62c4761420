//! One limit's counters: governor GCRA over a bounded, shared key table.
//!
//! We give governor our own state store so that we can (1) *probe* a limit without
//! charging it (two limiters share one map; the probe one never writes), which lets a
//! request refused by a later limit leave earlier limits untouched and makes `explain`
//! side-effect free, and (2) enforce a hard cap on tracked keys.
//!
//! Cap behaviour (fail-safe): when the table holds `max_keys` keys, a sweep of
//! fresh-equivalent keys is tried (at most once a second); if it is still full, a
//! *new* key is counted in the overflow bucket of its client's network (IPv4 /24,
//! IPv6 /48), with the same rate. Keys already tracked keep their own buckets. Under a
//! key-spraying attack the sprayer's newcomers are throttled together in its own
//! network's bucket, instead of growing memory, being let through, or using up the
//! one bucket every other newcomer would share: a spray from one network only hurts
//! that network. The network buckets may take the table an eighth over `max_keys`;
//! past that (a spray from very many networks at once) new keys share one last
//! overflow bucket. `overflowed` counts requests charged to any overflow bucket. The
//! cap is soft by at most the number of concurrent threads.

use dashmap::DashMap;
use governor::clock::{Clock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use std::borrow::Cow;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The key all new keys share when the table and its network overflow buckets are full.
pub(crate) const OVERFLOW_KEY: &str = "\u{1}overflow";

/// The overflow bucket of a client's network: its IPv4 /24 or IPv6 /48, the blocks an
/// attacker cheaply holds whole (fixed, not `[prefixes]`, so a policy with IPv6 /64
/// prefixes does not hand one attacker 65,536 overflow buckets per /48).
fn overflow_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let [x, y, z, _] = a.octets();
            format!("{OVERFLOW_KEY}|{x}.{y}.{z}.0/24")
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("{OVERFLOW_KEY}|{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// Our state store: a shared map of theoretical-arrival times (0 = fresh).
#[derive(Clone)]
struct Store {
    map: Arc<DashMap<Box<str>, AtomicU64>>,
    write: bool,
}

impl StateStore for Store {
    type Key = Box<str>;

    fn measure_and_replace<T, F, E>(&self, key: &Box<str>, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let cell = |v: &AtomicU64| -> Result<T, E> {
            let mut prev = v.load(Ordering::Acquire);
            loop {
                let (t, next) = f((prev != 0).then(|| Nanos::from(prev)))?;
                if !self.write {
                    return Ok(t);
                }
                match v.compare_exchange_weak(
                    prev,
                    next.as_u64().max(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok(t),
                    Err(p) => prev = p,
                }
            }
        };
        if let Some(v) = self.map.get(key) {
            return cell(&v);
        }
        if !self.write {
            return f(None).map(|(t, _)| t);
        }
        let entry = self.map.entry(key.clone()).or_insert_with(|| AtomicU64::new(0));
        cell(&entry)
    }
}

type Limiter<C> = RateLimiter<Box<str>, Store, C, StateInformationMiddleware>;

/// Result of checking one limit for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Admitted; `remaining` more requests of cost 1 would fit now, full again in `reset`.
    Pass { remaining: u32, reset: Duration },
    /// Refused; retry after `wait`.
    Refuse { wait: Duration },
}

/// Counters for one (rule, key, rate, burst).
pub(crate) struct Table<C: Clock> {
    map: Arc<DashMap<Box<str>, AtomicU64>>,
    charge: Limiter<C>,
    probe: Limiter<C>,
    clock: C,
    start: C::Instant,
    interval: Duration,
    max_keys: AtomicUsize,
    pub(crate) overflowed: AtomicU64,
    /// Idle keys the sweep dropped (their buckets were full again).
    pub(crate) evicted: AtomicU64,
    last_sweep: AtomicU64,
}

impl<C: Clock + Clone> Table<C> {
    pub(crate) fn new(quota: Quota, max_keys: usize, clock: C) -> Self {
        let map = Arc::new(DashMap::new());
        let charge =
            Limiter::<C>::new(quota, Store { map: map.clone(), write: true }, clock.clone());
        let probe =
            Limiter::<C>::new(quota, Store { map: map.clone(), write: false }, clock.clone());
        // Taken after the limiters' own start, so our "now" is never ahead of theirs and
        // the sweep can only keep a key too long, never drop a live one.
        let start = clock.now();
        Table {
            map,
            charge,
            probe,
            clock,
            start,
            interval: quota.replenish_interval(),
            max_keys: AtomicUsize::new(max_keys),
            overflowed: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// Applies a reloaded `[tables].max_keys` without losing counters.
    pub(crate) fn set_max_keys(&self, n: usize) {
        self.max_keys.store(n, Ordering::Relaxed);
    }

    /// Keys tracked now (including the overflow bucket).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Keys whose theoretical arrival time is ahead of now, with how far ahead (ns):
    /// the whole state a snapshot needs, since every other key is as good as fresh.
    pub(crate) fn debts(&self) -> Vec<(String, u64)> {
        let now = self.since_start();
        self.map
            .iter()
            .filter_map(|e| {
                let tat = e.value().load(Ordering::Acquire);
                (tat > now).then(|| (e.key().to_string(), tat - now))
            })
            .collect()
    }

    /// Puts back a key's debt, `ahead` ns past now, keeping whichever is later if the
    /// key is already counted; a full table takes no restored keys.
    pub(crate) fn restore_debt(&self, key: &str, ahead: u64) -> bool {
        if ahead == 0 || self.map.len() >= self.max_keys.load(Ordering::Relaxed) {
            return false;
        }
        let tat = self.since_start().saturating_add(ahead).max(1);
        let entry = self.map.entry(key.into()).or_insert_with(|| AtomicU64::new(0));
        entry.fetch_max(tat, Ordering::AcqRel);
        true
    }

    fn since_start(&self) -> u64 {
        self.clock.now().duration_since(self.start).as_u64()
    }

    /// The key to count under: the key itself, or, when the table is full, the
    /// overflow bucket of `client`'s network (the shared one past the buckets' room).
    fn effective<'k>(&self, key: &'k str, client: IpAddr) -> (Cow<'k, str>, bool) {
        let max = self.max_keys.load(Ordering::Relaxed);
        if self.map.len() < max || self.map.contains_key(key) {
            return (Cow::Borrowed(key), false);
        }
        self.sweep_if_due(Duration::from_secs(1));
        if self.map.len() < max {
            return (Cow::Borrowed(key), false);
        }
        let net = overflow_key(client);
        if self.map.len() < max.saturating_add(max / 8 + 1) || self.map.contains_key(net.as_str()) {
            (Cow::Owned(net), true)
        } else {
            (Cow::Borrowed(OVERFLOW_KEY), true)
        }
    }

    /// Drops keys indistinguishable from fresh ones, if `every` has passed since the last sweep.
    pub(crate) fn sweep_if_due(&self, every: Duration) {
        let now = self.since_start().max(1);
        let last = self.last_sweep.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= every.as_nanos() as u64;
        if due
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            // A stored arrival time at or before now decides exactly like a fresh key
            // (governor's own retain_recent keeps keys one interval longer than needed).
            let before = self.map.len();
            self.map.retain(|_, v| v.load(Ordering::Relaxed) > now);
            let dropped = before.saturating_sub(self.map.len());
            self.evicted.fetch_add(dropped as u64, Ordering::Relaxed);
        }
    }

    /// Checks without charging; `overflow` tells whether the key was diverted.
    /// `client` is the request's client address, whose network's overflow bucket
    /// counts the key when the table is full.
    pub(crate) fn probe(&self, key: &str, client: IpAddr, cost: NonZeroU32) -> (Check, bool) {
        let (k, over) = self.effective(key, client);
        (self.run(&self.probe, &k, cost), over)
    }

    /// Checks and charges.
    pub(crate) fn charge(&self, key: &str, client: IpAddr, cost: NonZeroU32) -> (Check, bool) {
        let (k, over) = self.effective(key, client);
        if over {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
        }
        (self.run(&self.charge, &k, cost), over)
    }

    fn run(&self, l: &Limiter<C>, key: &str, cost: NonZeroU32) -> Check {
        let key: Box<str> = key.into();
        match l.check_key_n(&key, cost) {
            Ok(Ok(snap)) => {
                let remaining = snap.remaining_burst_capacity();
                let missing = snap.quota().burst_size().get().saturating_sub(remaining);
                Check::Pass { remaining, reset: self.interval * missing }
            }
            Ok(Err(not_until)) => {
                Check::Refuse { wait: not_until.wait_time_from(self.clock.now()) }
            }
            // The compiler rejects cost > burst, so this is unreachable; refuse for safety.
            Err(_) => Check::Refuse { wait: self.interval },
        }
    }
}
