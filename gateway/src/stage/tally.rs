//! Feeds the decision counters ([`crate::decisions`]) from the request checks.

use std::net::IpAddr;

use super::refusal::Refusal;
use crate::tracker::Tracker;

/// Counts one decision of [`super::decide`]: let on, or refused for its reason.
pub fn record(tracker: &Tracker, ip: IpAddr, refusal: Option<&Refusal>, now: u64) {
    match refusal {
        None => tracker.decisions().allowed(),
        Some(r) => tracker.decisions().refused(ip, r.why.as_str(), now),
    }
}
