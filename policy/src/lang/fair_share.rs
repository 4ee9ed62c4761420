//! `[fair_share]`: a global ceiling on account creation that is shared among networks
//! instead of being first come, first served.
//!
//! A plain `global` limit is a lockout: a botnet spread over many networks fills it,
//! and from then on every honest newcomer is refused too. Here the ceiling `C` (per
//! window `W`) is counted with a sliding window, per network (IPv4 /16, IPv6 /32 by
//! default) and in total (`G`). `N` networks are active (asked in this window or the
//! last). A request from network `n`, which was admitted `a_n` times in the window, is
//! admitted when `G + 1 <= C` and either
//!
//! - `G < share_above * C` (not near the ceiling: first come, first served), or
//! - `a_n < w_n * (C - G) / N` (its share of what is left; `w_n` is 1, or
//!   `claimed_weight` for a source whose ledger record is net claims).
//!
//! What this guarantees is written out in `policy/README.md` ("Fair share"): a new
//! network's first request is admitted as long as the ceiling is not reached, and
//! networks already holding `a` admissions can only take more while more than `a * N`
//! is left, so greedy networks stop at about half of what is left, leaving the rest
//! for networks that have not asked yet. Pure logic: time comes from the engine's clock.

use crate::lang::rate::Rate;
use crate::lang::route::RouteClass;
use governor::clock::{Clock, Reference};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The compiled `[fair_share]` section.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FairShareSpec {
    /// Route classes it applies to.
    pub routes: Vec<RouteClass>,
    /// The ceiling: at most `count` admissions per `per`, in total.
    pub ceiling: Rate,
    /// Network size for IPv4 clients (bits).
    pub ipv4: u8,
    /// Network size for IPv6 clients (bits).
    pub ipv6: u8,
    /// Fraction of the ceiling below which nobody is limited by share.
    pub share_above: f64,
    /// Share multiplier of a source with a record of claimed accounts.
    pub claimed_weight: u32,
    /// Most networks tracked; past it new networks share one entry.
    pub max_networks: usize,
    /// Custom refusal text (what was exceeded).
    pub message: Option<String>,
    /// Custom advice appended to the refusal.
    pub advice: Option<String>,
}

/// What the fair-share ceiling says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FairVerdict {
    /// The policy has no `[fair_share]`, or it does not cover this route.
    NotApplicable,
    /// Admitted and counted.
    Admit,
    /// Refused: the ceiling is reached, or the network has had its share of it.
    Refuse {
        /// Seconds until the count has decayed enough to ask again (at most the window).
        retry_after_secs: u64,
        /// What to tell the client.
        message: String,
    },
}

/// A snapshot of the fair-share state, for metrics and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct FairShareStats {
    /// Networks tracked now (active in this window or the last).
    pub networks: usize,
    /// Admissions counted in the sliding window now.
    pub admitted_in_window: f64,
    /// The ceiling per window.
    pub ceiling: u32,
    /// Requests counted in the shared overflow entry because the table was full.
    pub overflowed: u64,
    /// Requests refused since the section was loaded.
    pub refused: u64,
}

/// Admissions of one counter in the current and the previous fixed window.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    window: u64,
    prev: u32,
    curr: u32,
}

impl Counts {
    /// Moves the counter to window `i` (the current becomes the previous one, or both
    /// are cleared when more than one window passed).
    fn roll(&mut self, i: u64) {
        if self.window == i {
            return;
        }
        self.prev = if self.window + 1 == i { self.curr } else { 0 };
        self.curr = 0;
        self.window = i;
    }

    /// Sliding-window estimate: the previous window weighted by how much of it still
    /// overlaps the last `W` seconds, plus the current one.
    fn estimate(&self, frac: f64) -> f64 {
        f64::from(self.prev) * (1.0 - frac) + f64::from(self.curr)
    }
}

/// Which network a client is counted under; `None` is the shared overflow entry.
type NetKey = Option<IpAddr>;

struct State {
    window: u64,
    global: Counts,
    nets: HashMap<NetKey, Counts>,
    overflowed: u64,
    refused: u64,
}

/// The live fair-share ceiling: its spec and its counters (kept across reloads while
/// the spec is unchanged).
pub(crate) struct FairShare<C: Clock> {
    pub(crate) spec: FairShareSpec,
    clock: C,
    start: C::Instant,
    state: Mutex<State>,
}

impl<C: Clock> FairShare<C> {
    pub(crate) fn new(spec: FairShareSpec, clock: C) -> Self {
        let start = clock.now();
        let state = State {
            window: 0,
            global: Counts::default(),
            nets: HashMap::new(),
            overflowed: 0,
            refused: 0,
        };
        FairShare { spec, clock, start, state: Mutex::new(state) }
    }

    /// Whether this ceiling counts requests of `route`.
    pub(crate) fn applies(&self, route: RouteClass) -> bool {
        self.spec.routes.contains(&route)
    }

    /// The network `ip` is counted under.
    fn network(&self, ip: IpAddr) -> IpAddr {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match ip {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let mask = u32::MAX.checked_shl(32 - u32::from(self.spec.ipv4)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(bits & mask))
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let mask = u128::MAX.checked_shl(128 - u32::from(self.spec.ipv6)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        }
    }

    /// (window index, fraction of it elapsed, window length in nanoseconds, now).
    fn position(&self) -> (u64, f64, u64, u64) {
        let now = self.clock.now().duration_since(self.start).as_u64();
        let w = self.spec.ceiling.per.secs().saturating_mul(1_000_000_000).max(1);
        let i = now / w;
        (i, (now % w) as f64 / w as f64, w, now)
    }

    /// Decides one request from `ip` and counts it when admitted. `claimed`: the
    /// source has a record of claimed accounts (its share is `claimed_weight` times).
    pub(crate) fn admit(&self, ip: IpAddr, claimed: bool) -> FairVerdict {
        let (i, frac, w, now) = self.position();
        let net = self.network(ip);
        let mut st = self.state.lock();
        if st.window != i {
            // Networks silent for a whole window no longer count as active.
            st.nets.retain(|_, c| c.window + 1 >= i);
            st.window = i;
        }
        st.global.roll(i);
        let key: NetKey =
            if st.nets.len() < self.spec.max_networks || st.nets.contains_key(&Some(net)) {
                Some(net)
            } else {
                st.overflowed += 1;
                None
            };
        let active = {
            let entry = st.nets.entry(key).or_default();
            entry.roll(i);
            entry.estimate(frac)
        };
        let n = st.nets.len().max(1) as f64;
        let cap = f64::from(self.spec.ceiling.count.get());
        let total = st.global.estimate(frac);
        let weight = if claimed { f64::from(self.spec.claimed_weight) } else { 1.0 };
        let under_ceiling = total + 1.0 <= cap;
        let below_sharing = total < self.spec.share_above * cap;
        let within_share = active < weight * (cap - total) / n;
        if under_ceiling && (below_sharing || within_share) {
            st.global.curr = st.global.curr.saturating_add(1);
            if let Some(e) = st.nets.get_mut(&key) {
                e.curr = e.curr.saturating_add(1);
            }
            return FairVerdict::Admit;
        }
        st.refused += 1;
        // The counts decay as the window slides; by the end of the next window
        // everything counted now is gone, and usually far sooner.
        let left_in_window = w - now % w;
        let retry = left_in_window.div_ceil(1_000_000_000).max(1);
        FairVerdict::Refuse { retry_after_secs: retry, message: self.message(retry, under_ceiling) }
    }

    /// Where a request from `client_ip` stands now, for `explain`: nothing is counted.
    pub(crate) fn describe(&self, client_ip: IpAddr) -> String {
        let (i, frac, _, _) = self.position();
        let net = self.network(client_ip);
        let st = self.state.lock();
        let mut global = st.global;
        global.roll(i);
        let known = st.nets.get(&Some(net)).filter(|c| c.window + 1 >= i).copied();
        let mut entry = known.unwrap_or_default();
        entry.roll(i);
        let active = st.nets.values().filter(|c| c.window + 1 >= i).count();
        let n = (active + usize::from(known.is_none())).max(1);
        let cap = f64::from(self.spec.ceiling.count.get());
        let (total, held) = (global.estimate(frac), entry.estimate(frac));
        let share = (cap - total) / n as f64;
        let below = total < self.spec.share_above * cap;
        let admit = total + 1.0 <= cap && (below || held < share);
        let bits = if net.is_ipv4() { self.spec.ipv4 } else { self.spec.ipv6 };
        format!(
            "network {net}/{bits} holds {held:.1}, its share of what is left {share:.1} ({total:.0} of {} in the window, {n} networks, sharing above {:.0}): {}",
            self.spec.ceiling.count,
            self.spec.share_above * cap,
            if admit { "would admit" } else { "would REFUSE" }
        )
    }

    fn message(&self, retry: u64, under_ceiling: bool) -> String {
        let what = match &self.spec.message {
            Some(m) => m.clone(),
            None if under_ceiling => format!(
                "the service is near its limit of {} temporary accounts per {} and your network has had its share",
                self.spec.ceiling.count,
                self.spec.ceiling.per.name()
            ),
            None => format!(
                "the service has created its limit of {} temporary accounts per {}",
                self.spec.ceiling.count,
                self.spec.ceiling.per.name()
            ),
        };
        let advice = self.spec.advice.as_ref().map_or(String::new(), |a| format!(", {a}"));
        format!("Fair share exceeded: {what}. Retry in {retry} seconds{advice}.")
    }

    pub(crate) fn stats(&self) -> FairShareStats {
        let (i, frac, _, _) = self.position();
        let st = self.state.lock();
        let mut g = st.global;
        g.roll(i);
        FairShareStats {
            networks: st.nets.len(),
            admitted_in_window: g.estimate(frac),
            ceiling: self.spec.ceiling.count.get(),
            overflowed: st.overflowed,
            refused: st.refused,
        }
    }
}

mod snapshot;
pub use snapshot::FairShareState;
