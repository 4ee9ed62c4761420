//! What a refusal by a limit says: the 429 decision (rule, retry time, the message the
//! client reads, the quota headers) that the local engine and the fleet plan both make.

use std::time::Duration;

use crate::lang::decision::{Decision, Outcome, QuotaInfo};
use crate::lang::model::{Limit, Policy, Rule};

/// Whole seconds, rounded up: a client told to retry in 0 s would retry at once.
pub(crate) fn secs_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The message of a limit's refusal: the rule's own text or what the limit allows.
fn refuse_message(rule: &Rule, l: &Limit, ip: std::net::IpAddr, p: &Policy, retry: u64) -> String {
    let what = match &rule.message {
        Some(m) => m.clone(),
        None => format!(
            "at most {} requests per {} for {}",
            l.rate.count,
            l.rate.per.name(),
            l.key.describe(ip, p.prefixes)
        ),
    };
    let advice = rule.advice.as_ref().map_or(String::new(), |a| format!(", {a}"));
    format!("Rate limit \"{}\" exceeded: {what}. Retry in {retry} seconds{advice}.", rule.name)
}

/// Turns `d` into the refusal of `rule`'s limit `li` (whose bucket is `key`), to be
/// retried after `wait`.
pub(crate) fn refuse_429(
    d: &mut Decision,
    p: &Policy,
    rule: &Rule,
    (li, key): (usize, Option<String>),
    wait: Duration,
    ip: std::net::IpAddr,
) {
    let Some(l) = rule.limits.get(li) else { return };
    d.key = key.map(|k| (l.key.text.clone(), k));
    let retry = secs_up(wait).max(1);
    d.outcome = Outcome::Refuse { status: 429 };
    d.rule = Some(rule.name.clone());
    d.retry_after_secs = Some(retry);
    d.message = refuse_message(rule, l, ip, p, retry);
    d.quota = Some(QuotaInfo {
        name: rule.name.clone(),
        quota: l.rate.count.get(),
        window_secs: l.rate.per.secs(),
        remaining: 0,
        reset_secs: retry,
    });
}
