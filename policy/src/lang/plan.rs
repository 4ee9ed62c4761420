//! Decisions whose counters live elsewhere: a [`Plan`] now, the [`Decision`] later.
//!
//! A fleet of gateways shares its rate-limit state in a store (Redis) that this crate
//! never talks to. [`Engine::plan`] lists what a request meets, without counting
//! anything: every matching `limit` and `shadow` rule in order, each limit with its
//! stable id, the bucket key the request counts under, its rate, burst and cost, up to
//! the first `allow` or `deny` rule. The gateway asks the store about those limits
//! (probing them all, charging them only if all pass, as [`Engine::decide`] does) and
//! hands the store's [`Verdict`]s to [`Engine::finish`], which turns them into the same
//! [`Decision`] the local engine would have made, counts the rule counters and charges
//! the local tables with what the store charged (so that, should the store become
//! unreachable, each gateway's own limiter starts from what it admitted itself).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;

use crate::lang::decision::{Decision, Outcome, QuotaInfo};
use crate::lang::engine::{rule_matches, table_label, Engine, Loaded};
use crate::lang::identity::Identity;
use crate::lang::key::{KeyInputs, KeyPart};
use crate::lang::model::{Action, OnStoreError};
use crate::lang::rate::Rate;
use crate::lang::refuse::{refuse_429, secs_up};

/// One limit a request meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLimit {
    /// The limit's stable id, `rule/key rate burst N`: the same on every gateway running
    /// the policy, and kept by reloads that keep the limit (a changed rate or burst is
    /// a new id, so it starts a new bucket, as the local engine resets its table).
    pub id: String,
    /// The bucket key the request counts under (`ip=192.0.2.1`, `global`, ...).
    pub key: String,
    /// The limit's rate.
    pub rate: Rate,
    /// Its burst.
    pub burst: u32,
    /// What one request costs.
    pub cost: u32,
    /// Index of the limit's rule among the plan's limit rules: the limits of one rule
    /// pass or fail together.
    pub group: usize,
    /// The rule is `shadow`: it never refuses, and is charged only if all its limits pass.
    pub shadow: bool,
    /// What the rule does when the store cannot answer.
    pub on_store_error: OnStoreError,
    /// The rule's name (for messages).
    pub rule_name: String,
    rule: usize,
    limit: usize,
}

impl PlannedLimit {
    /// The time one request's worth of the limit takes to refill (`per / count`).
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.rate.per.secs()) / self.rate.count.get()
    }
}

/// The store's answer for one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: `remaining` more requests of cost 1 fit now; the bucket is
    /// full again in `reset`.
    Pass {
        /// Requests of cost 1 that still fit.
        remaining: u32,
        /// Until the bucket is full again.
        reset: Duration,
    },
    /// Over the limit; retry after `wait`.
    Refuse {
        /// Until the request would fit.
        wait: Duration,
    },
    /// Not asked, because another limit of the request is known to refuse it (the
    /// gateway's cache of keys over their limit); counts as passing.
    NotAsked,
}

#[derive(Debug, Clone)]
enum Step {
    Allow(usize),
    Deny(usize),
    Limits { rule: usize, range: std::ops::Range<usize> },
}

/// What one request meets: see the module documentation.
pub struct Plan<C: Clock = governor::clock::DefaultClock> {
    loaded: Arc<Loaded<C>>,
    early: Option<Decision>,
    steps: Vec<Step>,
    limits: Vec<PlannedLimit>,
    client_ip: std::net::IpAddr,
    route: crate::RouteClass,
}

impl<C: Clock> Plan<C> {
    /// The limits to ask the store about, in rule order.
    pub fn limits(&self) -> &[PlannedLimit] {
        &self.limits
    }

    /// Whether the store must be asked at all (some matching rule has a limit).
    pub fn needs_store(&self) -> bool {
        !self.limits.is_empty()
    }

    /// Whether the limits are to be charged when they pass: not when the request ends
    /// at a `deny` rule (the store is then only probed, to tell a 429 from a 403).
    pub fn charges(&self) -> bool {
        !matches!(self.steps.last(), Some(Step::Deny(_)))
    }

    /// The rules that refuse with 503 when the store cannot answer (`on_store_error =
    /// "closed"`), in order.
    pub fn closed_rules(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for l in self.limits.iter().filter(|l| !l.shadow) {
            if l.on_store_error == OnStoreError::Closed && !out.contains(&l.rule_name.as_str()) {
                out.push(&l.rule_name);
            }
        }
        out
    }
}

impl<C: Clock + Clone> Engine<C> {
    /// What `id`'s request meets, counting nothing (see [`Plan`]).
    pub fn plan(&self, id: &Identity<'_>) -> Plan<C> {
        let loaded = self.loaded_full();
        let p = &loaded.policy;
        let req = id.request();
        let (ip, route) = (id.client_ip, id.route);
        let mut plan = Plan {
            loaded: loaded.clone(),
            early: None,
            steps: Vec::new(),
            limits: Vec::new(),
            client_ip: ip,
            route,
        };
        if let Some(why) = id.path_problem {
            let mut d = empty_decision(ip, route);
            d.refuse_non_canonical(why);
            plan.early = Some(d);
            return plan;
        }
        let needs_fp = p.rules.iter().any(|r| {
            r.limits.iter().any(|l| l.key.parts.contains(&KeyPart::HttpFp))
                && rule_matches(r, p, req, ip, route)
        });
        let http_fp = if needs_fp { id.http_fp() } else { "" };
        let inputs = KeyInputs { ip, route, http_fp, tls_fp: id.tls_fp, account: req.account };
        let mut group = 0;
        for (ri, rule) in p.rules.iter().enumerate() {
            if !rule_matches(rule, p, req, ip, route) {
                continue;
            }
            match rule.action {
                Action::Allow => {
                    plan.steps.push(Step::Allow(ri));
                    break;
                }
                Action::Deny => {
                    plan.steps.push(Step::Deny(ri));
                    break;
                }
                Action::Limit | Action::Shadow => {
                    let start = plan.limits.len();
                    for (li, l) in rule.limits.iter().enumerate() {
                        let Some(key) = l.key.derive(&inputs, p.prefixes, l.missing) else {
                            continue;
                        };
                        plan.limits.push(PlannedLimit {
                            id: table_label(rule, l),
                            key,
                            rate: l.rate,
                            burst: l.burst.get(),
                            cost: l.cost.get(),
                            group,
                            shadow: rule.action == Action::Shadow,
                            on_store_error: rule.on_store_error,
                            rule_name: rule.name.clone(),
                            rule: ri,
                            limit: li,
                        });
                    }
                    group += 1;
                    plan.steps.push(Step::Limits { rule: ri, range: start..plan.limits.len() });
                }
            }
        }
        plan
    }

    /// The decision for `plan` given the store's `verdicts` (one per
    /// [`Plan::limits`], in order): the decision [`Engine::decide`] makes from its own
    /// tables. Counts the rule counters and charges the local tables with the limits
    /// the store charged.
    pub fn finish(&self, plan: Plan<C>, verdicts: &[Verdict]) -> Decision {
        let Plan { loaded, early, steps, limits, client_ip: ip, route } = plan;
        if let Some(d) = early {
            return d;
        }
        let p = &loaded.policy;
        let verdict = |i: usize| verdicts.get(i).copied().unwrap_or(Verdict::NotAsked);
        let mut d = empty_decision(ip, route);
        let mut charged = Vec::new();
        // Limit and shadow rules whose limits all passed: `allowed` once admitted.
        let mut passed = Vec::new();
        for step in &steps {
            match step {
                Step::Allow(ri) => {
                    let c = &loaded.counters[*ri];
                    c.matched.fetch_add(1, Ordering::Relaxed);
                    c.allowed.fetch_add(1, Ordering::Relaxed);
                    d.rule = Some(p.rules[*ri].name.clone());
                    break;
                }
                Step::Deny(ri) => {
                    let (c, rule) = (&loaded.counters[*ri], &p.rules[*ri]);
                    c.matched.fetch_add(1, Ordering::Relaxed);
                    c.refused.fetch_add(1, Ordering::Relaxed);
                    d.outcome = Outcome::Refuse { status: 403 };
                    d.rule = Some(rule.name.clone());
                    d.message = rule.message.clone().unwrap_or_else(|| {
                        format!("Request refused by policy rule \"{}\".", rule.name)
                    });
                    return d;
                }
                Step::Limits { rule: ri, range } => {
                    let (c, rule) = (&loaded.counters[*ri], &p.rules[*ri]);
                    c.matched.fetch_add(1, Ordering::Relaxed);
                    let mut worst: Option<(usize, Option<String>, Duration)> = None;
                    for i in range.clone() {
                        if let Verdict::Refuse { wait } = verdict(i) {
                            if worst.as_ref().is_none_or(|(_, _, w)| wait > *w) {
                                worst = Some((limits[i].limit, Some(limits[i].key.clone()), wait));
                            }
                        }
                    }
                    // A shadow rule without limits stands for a trial `deny`.
                    if rule.action == Action::Shadow && rule.limits.is_empty() {
                        worst = Some((0, None, Duration::ZERO));
                    }
                    match (rule.action, worst) {
                        (Action::Limit, Some((li, key, wait))) => {
                            c.refused.fetch_add(1, Ordering::Relaxed);
                            refuse_429(&mut d, p, rule, (li, key), wait, ip);
                            return d;
                        }
                        (_, Some(_)) => {
                            c.shadow_refused.fetch_add(1, Ordering::Relaxed);
                            d.shadow.push(rule.name.clone());
                        }
                        (_, None) => {
                            charged.extend(range.clone());
                            passed.push(*ri);
                        }
                    }
                }
            }
        }
        for i in charged {
            let pl = &limits[i];
            let rule = &p.rules[pl.rule];
            let l = &rule.limits[pl.limit];
            // The local mirror: best effort, the store has decided.
            let _ = loaded.tables[pl.rule][pl.limit].charge(&pl.key, ip, l.cost);
            if let (Action::Limit, Verdict::Pass { remaining, reset }) = (rule.action, verdict(i)) {
                if d.quota.as_ref().is_none_or(|q| remaining < q.remaining) {
                    d.quota = Some(QuotaInfo {
                        name: rule.name.clone(),
                        quota: l.rate.count.get(),
                        window_secs: l.rate.per.secs(),
                        remaining,
                        reset_secs: secs_up(reset),
                    });
                }
            }
        }
        for ri in passed {
            loaded.counters[ri].allowed.fetch_add(1, Ordering::Relaxed);
        }
        let sweep = p.tables.sweep;
        for t in loaded.tables.iter().flatten() {
            t.sweep_if_due(sweep);
        }
        d
    }
}

fn empty_decision(ip: std::net::IpAddr, route: crate::RouteClass) -> Decision {
    Decision {
        outcome: Outcome::Allow,
        route,
        client_ip: ip,
        rule: None,
        message: String::new(),
        retry_after_secs: None,
        shadow: Vec::new(),
        quota: None,
        key: None,
    }
}
