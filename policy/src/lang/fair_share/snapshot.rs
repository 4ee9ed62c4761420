//! The fair-share counters as data, for a durable store: the sliding-window count of
//! admissions, in total and per network, so a restart does not reopen a ceiling that a
//! swarm had filled.
//!
//! Window indices count from the process's start, so the counts are exported as what
//! they estimate now (admissions in the last window) and imported into the new
//! process's windows with the same estimate, decayed by the time elapsed in between.
//! The import cannot rebuild the exact shape of the old windows: in the first half of
//! the current window the count goes in as the previous window's (gone at this
//! window's end), in the second half as the current one's (gone by the next window's
//! end). Either way it is gone within one and a half windows, never sooner than half.

use std::net::IpAddr;
use std::time::Duration;

use governor::clock::Clock;
use serde::{Deserialize, Serialize};

use super::{Counts, FairShare};

/// The counters of one `[fair_share]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FairShareState {
    /// The section the counts belong to (its settings as text): counts of another
    /// ceiling are not restored.
    pub spec: String,
    /// Admissions in the last window, in total.
    pub total: f64,
    /// Admissions in the last window per network (`None`: the shared overflow entry).
    pub networks: Vec<(Option<IpAddr>, f64)>,
}

impl<C: Clock> FairShare<C> {
    fn spec_text(&self) -> String {
        format!("{:?}", self.spec)
    }

    /// The counts now.
    pub(crate) fn export(&self) -> FairShareState {
        let (i, frac, _, _) = self.position();
        let st = self.state.lock();
        let estimate = |c: &Counts| {
            let mut c = *c;
            c.roll(i);
            c.estimate(frac)
        };
        let mut networks: Vec<(Option<IpAddr>, f64)> =
            st.nets.iter().map(|(k, c)| (*k, estimate(c))).filter(|(_, n)| *n > 0.0).collect();
        networks.sort_by_key(|n| n.0);
        FairShareState { spec: self.spec_text(), total: estimate(&st.global), networks }
    }

    /// Adds `state`, exported `elapsed` ago, to the counts; false (nothing done) when
    /// it belongs to another section.
    pub(crate) fn import(&self, state: &FairShareState, elapsed: Duration) -> bool {
        if state.spec != self.spec_text() {
            return false;
        }
        let (i, frac, w, _) = self.position();
        let left = 1.0 - (elapsed.as_nanos() as f64 / w as f64).min(1.0);
        let put = |c: &mut Counts, n: f64| {
            c.roll(i);
            let n = n * left;
            if frac < 0.5 {
                let prev = (n / (1.0 - frac)).ceil().min(f64::from(u32::MAX)) as u32;
                c.prev = c.prev.saturating_add(prev);
            } else {
                c.curr = c.curr.saturating_add(n.ceil().min(f64::from(u32::MAX)) as u32);
            }
        };
        let mut st = self.state.lock();
        st.window = i;
        put(&mut st.global, state.total);
        for (net, n) in &state.networks {
            if st.nets.len() >= self.spec.max_networks && !st.nets.contains_key(net) {
                continue;
            }
            put(st.nets.entry(*net).or_default(), *n);
        }
        true
    }
}
