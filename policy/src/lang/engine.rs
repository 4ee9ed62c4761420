//! The decision engine: cheap `decide` on the hot path, atomic `reload`, `stats`.
//!
//! A decision runs in two phases. First every matching rule is *probed* (nothing is
//! charged); if a `limit` rule would refuse, the request is refused and no counter moves,
//! so a client refused by one limit does not also burn its other budgets. Otherwise every
//! passing limit is charged. Under concurrency a charge can still fail after its probe
//! passed; the request is then refused and the limits charged before it stay charged.

use crate::lang::decision::{Decision, Outcome, QuotaInfo, Request};
use crate::lang::explain::{Explanation, LimitTrace, RuleTrace};
use crate::lang::fair_share::{FairShare, FairShareStats, FairVerdict};
use crate::lang::identity::Identity;
use crate::lang::key::{KeyInputs, KeyPart};
use crate::lang::model::{Action, Limit, Policy, Rule};
use crate::lang::refuse::{refuse_429, secs_up};
use crate::lang::table::{Check, Table};
use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Per-rule counters (kept across reloads while the rule name stays).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) matched: AtomicU64,
    pub(crate) allowed: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) shadow_refused: AtomicU64,
}

pub(crate) type TableId = (String, String, String, u32);

pub(crate) struct Loaded<C: Clock> {
    pub(crate) policy: Arc<Policy>,
    pub(crate) counters: Vec<Arc<Counters>>,
    /// `tables[rule][limit]`, parallel to `policy.rules[rule].limits`.
    pub(crate) tables: Vec<Vec<Arc<Table<C>>>>,
    needs_http_fp: bool,
    /// The `[fair_share]` ceiling, kept across reloads while its section is unchanged.
    fair: Option<Arc<FairShare<C>>>,
}

/// Evaluates requests against the current policy. Share it (`Arc<Engine>`) across threads.
pub struct Engine<C: Clock = DefaultClock> {
    loaded: ArcSwap<Loaded<C>>,
    clock: C,
    reload_lock: Mutex<()>,
}

/// What a reload did to the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Limits whose (rule, key, rate, burst) are unchanged: counters kept.
    pub kept: Vec<String>,
    /// New or changed limits: counters start empty.
    pub reset: Vec<String>,
    /// Limits no longer in the policy: counters dropped.
    pub removed: Vec<String>,
}

/// Counters for one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleStats {
    /// Rule name.
    pub name: String,
    /// Requests the rule's `match` selected.
    pub matched: u64,
    /// Requests the rule let through that the engine then admitted: those an `allow`
    /// rule admitted, and those whose every limit of a `limit` or `shadow` rule passed.
    pub allowed: u64,
    /// Requests refused by this rule (403 or 429).
    pub refused: u64,
    /// Requests a `shadow` rule would have refused.
    pub shadow_refused: u64,
}

/// Size of one limit table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    /// `rule/key`.
    pub limit: String,
    /// Keys tracked now.
    pub keys: usize,
    /// Requests counted in the overflow bucket because the table was full.
    pub overflowed: u64,
    /// Idle keys the sweep dropped.
    pub evicted: u64,
}

/// Snapshot of all counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// One entry per rule, in policy order.
    pub rules: Vec<RuleStats>,
    /// One entry per limit.
    pub tables: Vec<TableStats>,
}

fn table_id(rule: &Rule, l: &Limit) -> TableId {
    (rule.name.clone(), l.key.text.clone(), l.rate.to_string(), l.burst.get())
}

fn label(id: &TableId) -> String {
    format!("{}/{} {} burst {}", id.0, id.1, id.2, id.3)
}

/// A limit's stable id, `rule/key rate burst N` (what a reload report names it by).
pub(crate) fn table_label(rule: &Rule, l: &Limit) -> String {
    label(&table_id(rule, l))
}

impl Engine<DefaultClock> {
    /// An engine on the real clock.
    pub fn new(policy: Policy) -> Self {
        Self::with_clock(policy, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Engine<C> {
    /// An engine on the given clock (tests pass a `FakeRelativeClock`).
    pub fn with_clock(policy: Policy, clock: C) -> Self {
        let (loaded, _) = Self::load(policy, &clock, None);
        Engine { loaded: ArcSwap::from_pointee(loaded), clock, reload_lock: Mutex::new(()) }
    }

    fn load(policy: Policy, clock: &C, old: Option<&Loaded<C>>) -> (Loaded<C>, ReloadReport) {
        let mut report = ReloadReport::default();
        let mut old_tables: HashMap<TableId, Arc<Table<C>>> = HashMap::new();
        let mut old_counters: HashMap<String, Arc<Counters>> = HashMap::new();
        if let Some(old) = old {
            for (r, ts) in old.policy.rules.iter().zip(&old.tables) {
                for (l, t) in r.limits.iter().zip(ts) {
                    old_tables.insert(table_id(r, l), t.clone());
                }
            }
            for (r, c) in old.policy.rules.iter().zip(&old.counters) {
                old_counters.insert(r.name.clone(), c.clone());
            }
        }
        let max_keys = policy.tables.max_keys;
        let mut tables = Vec::with_capacity(policy.rules.len());
        let mut counters = Vec::with_capacity(policy.rules.len());
        for r in &policy.rules {
            counters.push(old_counters.remove(&r.name).unwrap_or_default());
            let mut ts = Vec::with_capacity(r.limits.len());
            for l in &r.limits {
                let id = table_id(r, l);
                match old_tables.remove(&id) {
                    Some(t) => {
                        t.set_max_keys(max_keys);
                        report.kept.push(label(&id));
                        ts.push(t);
                    }
                    None => {
                        if old.is_some() {
                            report.reset.push(label(&id));
                        }
                        ts.push(Arc::new(Table::new(l.quota, max_keys, clock.clone())));
                    }
                }
            }
            tables.push(ts);
        }
        report.removed = old_tables.keys().map(label).collect();
        report.removed.sort();
        let fair = policy.fair_share.clone().map(|spec| {
            match old.and_then(|o| o.fair.as_ref()).filter(|f| f.spec == spec) {
                Some(kept) => kept.clone(),
                None => Arc::new(FairShare::new(spec, clock.clone())),
            }
        });
        let needs_http_fp = policy
            .rules
            .iter()
            .flat_map(|r| &r.limits)
            .any(|l| l.key.parts.contains(&KeyPart::HttpFp));
        (Loaded { policy: Arc::new(policy), counters, tables, needs_http_fp, fair }, report)
    }

    /// Swaps in a new policy atomically; unchanged limits keep their counters.
    pub fn reload(&self, policy: Policy) -> ReloadReport {
        let _one_at_a_time = self.reload_lock.lock();
        let old = self.loaded.load_full();
        let (loaded, report) = Self::load(policy, &self.clock, Some(&old));
        self.loaded.store(Arc::new(loaded));
        report
    }

    /// The loaded policy and its tables, for [`Engine::plan`].
    pub(crate) fn loaded_full(&self) -> Arc<Loaded<C>> {
        self.loaded.load_full()
    }

    /// The policy in force (a copy).
    pub fn policy(&self) -> Policy {
        Policy::clone(&self.loaded.load().policy)
    }

    /// The policy in force, shared: cheap enough for the request path, where the
    /// gateway reads the quota, budget and proof-of-work sections.
    pub fn current_policy(&self) -> Arc<Policy> {
        self.loaded.load().policy.clone()
    }

    /// Decides one request and charges the limits it passes.
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        let loaded = self.loaded.load();
        let id = Identity::derive(&loaded.policy, *req);
        self.decide_loaded(&loaded, &id)
    }

    /// Decides a request whose [`Identity`] the caller derived (with
    /// [`Identity::derive`] on [`Engine::current_policy`]) and reads in its own later
    /// checks, so that every check sees the same client.
    pub fn decide_identified(&self, id: &Identity<'_>) -> Decision {
        self.decide_loaded(&self.loaded.load(), id)
    }

    fn decide_loaded(&self, loaded: &Loaded<C>, id: &Identity<'_>) -> Decision {
        let d = evaluate(loaded, id, true, None);
        let sweep = loaded.policy.tables.sweep;
        for t in loaded.tables.iter().flatten() {
            t.sweep_if_due(sweep);
        }
        d
    }

    /// The `[fair_share]` ceiling in force (see [`crate::FairVerdict`]).
    pub(crate) fn fair(&self) -> Option<Arc<FairShare<C>>> {
        self.loaded.load().fair.clone()
    }

    /// What `decide` would do and why, without charging or counting anything.
    pub fn explain(&self, req: &Request<'_>) -> Explanation {
        let loaded = self.loaded.load();
        let id = Identity::derive(&loaded.policy, *req);
        self.explain_identified(&id)
    }

    /// [`Engine::explain`] for an identity the caller derived.
    pub fn explain_identified(&self, id: &Identity<'_>) -> Explanation {
        let loaded = self.loaded.load();
        let mut trace = Explanation::default();
        trace.decision = Some(evaluate(&loaded, id, false, Some(&mut trace)));
        trace.fair_share =
            self.fair().filter(|f| f.applies(id.route)).map(|f| f.describe(id.client_ip));
        trace
    }

    /// Every limit table in force, by the limit's identity (for [`crate::LimitSnapshot`]).
    pub(crate) fn limit_tables(&self) -> Vec<(TableId, Arc<Table<C>>)> {
        let loaded = self.loaded.load();
        let rules = loaded.policy.rules.iter().zip(&loaded.tables);
        rules
            .flat_map(|(r, ts)| r.limits.iter().zip(ts).map(|(l, t)| (table_id(r, l), t.clone())))
            .collect()
    }

    /// Runs the idle-key sweep on every table now (decide also does it every `sweep_secs`).
    pub fn sweep(&self) {
        for t in self.loaded.load().tables.iter().flatten() {
            t.sweep_if_due(Duration::ZERO);
        }
    }

    /// Counters and table sizes.
    pub fn stats(&self) -> Stats {
        let loaded = self.loaded.load();
        let p = &loaded.policy;
        let rules = p
            .rules
            .iter()
            .zip(&loaded.counters)
            .map(|(r, c)| RuleStats {
                name: r.name.clone(),
                matched: c.matched.load(Ordering::Relaxed),
                allowed: c.allowed.load(Ordering::Relaxed),
                refused: c.refused.load(Ordering::Relaxed),
                shadow_refused: c.shadow_refused.load(Ordering::Relaxed),
            })
            .collect();
        let tables = p
            .rules
            .iter()
            .zip(&loaded.tables)
            .flat_map(|(r, ts)| {
                r.limits.iter().zip(ts).map(move |(l, t)| TableStats {
                    limit: format!("{}/{}", r.name, l.key.text),
                    keys: t.len(),
                    overflowed: t.overflowed.load(Ordering::Relaxed),
                    evicted: t.evicted.load(Ordering::Relaxed),
                })
            })
            .collect();
        Stats { rules, tables }
    }
}

pub(crate) fn rule_matches(
    rule: &Rule,
    p: &Policy,
    req: &Request<'_>,
    ip: std::net::IpAddr,
    route: crate::RouteClass,
) -> bool {
    let m = &rule.matcher;
    let has = |h: &String| req.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(h));
    (m.lists.is_empty() || m.lists.iter().any(|i| p.lists.get(*i).is_some_and(|l| l.contains(ip))))
        && !m.not_lists.iter().any(|i| p.lists.get(*i).is_some_and(|l| l.contains(ip)))
        && (m.routes.is_empty() || m.routes.contains(&route))
        && (m.methods.is_empty() || m.methods.iter().any(|x| x.eq_ignore_ascii_case(req.method)))
        && (m.headers.is_empty() || m.headers.iter().any(has))
        && !m.no_headers.iter().any(has)
        && (m.accounts.is_empty() || m.accounts.contains(&req.account.is_some()))
}

fn evaluate<C: Clock + Clone>(
    loaded: &Loaded<C>,
    id: &Identity<'_>,
    charge: bool,
    mut trace: Option<&mut Explanation>,
) -> Decision {
    let p = &loaded.policy;
    let req = id.request();
    let (ip, route, tls_fp) = (id.client_ip, id.route, id.tls_fp);
    let needs_fp = loaded.needs_http_fp
        && p.rules.iter().any(|r| {
            r.limits.iter().any(|l| l.key.parts.contains(&KeyPart::HttpFp))
                && rule_matches(r, p, req, ip, route)
        });
    let http_fp = if needs_fp || trace.is_some() { id.http_fp() } else { "" };
    let inputs = KeyInputs { ip, route, http_fp, tls_fp, account: req.account };
    if let Some(t) = trace.as_deref_mut() {
        t.route = Some(route);
        t.client_ip = Some(ip);
        t.http_fp = http_fp.to_string();
        t.tls_fp = tls_fp.map(str::to_string);
        t.account = req.account.map(str::to_string);
    }
    let mut d = Decision {
        outcome: Outcome::Allow,
        route,
        client_ip: ip,
        rule: None,
        message: String::new(),
        retry_after_secs: None,
        shadow: Vec::new(),
        quota: None,
        key: None,
    };
    if let Some(why) = id.path_problem {
        d.refuse_non_canonical(why);
        return d;
    }
    // (rule index, limit index, key) of every limit to charge in phase two.
    let mut pending: Vec<(usize, usize, String)> = Vec::new();
    // Limit and shadow rules whose limits all passed: counted `allowed` once charged.
    let mut passed: Vec<usize> = Vec::new();
    for (ri, rule) in p.rules.iter().enumerate() {
        if !rule_matches(rule, p, req, ip, route) {
            continue;
        }
        let counters = &loaded.counters[ri];
        if charge {
            counters.matched.fetch_add(1, Ordering::Relaxed);
        }
        let mut rt = RuleTrace {
            name: if trace.is_some() { rule.name.clone() } else { String::new() },
            action: rule.action,
            limits: Vec::new(),
        };
        match rule.action {
            Action::Allow => {
                if charge {
                    counters.allowed.fetch_add(1, Ordering::Relaxed);
                }
                d.rule = Some(rule.name.clone());
                push_trace(&mut trace, rt);
                break;
            }
            Action::Deny => {
                if charge {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                }
                d.outcome = Outcome::Refuse { status: 403 };
                d.rule = Some(rule.name.clone());
                d.message = rule.message.clone().unwrap_or_else(|| {
                    format!("Request refused by policy rule \"{}\".", rule.name)
                });
                push_trace(&mut trace, rt);
                return d;
            }
            Action::Limit | Action::Shadow => {
                let mut worst: Option<(usize, Duration, Option<String>)> = None;
                let mut passing = Vec::new();
                for (li, l) in rule.limits.iter().enumerate() {
                    let key = l.key.derive(&inputs, p.prefixes, l.missing);
                    let Some(key) = key else {
                        rt.limits.push(LimitTrace::new(
                            l,
                            None,
                            "skipped: key part absent (missing = \"skip\")".into(),
                        ));
                        continue;
                    };
                    let (check, over) = loaded.tables[ri][li].probe(&key, ip, l.cost);
                    if trace.is_some() {
                        let note =
                            if over { " (table full: overflow bucket of the network)" } else { "" };
                        let text = match check {
                            Check::Pass { remaining, .. } => {
                                format!("pass, {remaining} left after this request{note}")
                            }
                            Check::Refuse { wait } => {
                                format!("REFUSE, retry in {}s{note}", secs_up(wait))
                            }
                        };
                        rt.limits.push(LimitTrace::new(l, Some(key.clone()), text));
                    }
                    match check {
                        Check::Refuse { wait }
                            if worst.as_ref().is_none_or(|(_, w, _)| wait > *w) =>
                        {
                            worst = Some((li, wait, Some(key)))
                        }
                        Check::Refuse { .. } => {}
                        Check::Pass { .. } => passing.push((ri, li, key)),
                    }
                }
                push_trace(&mut trace, rt);
                // A shadow rule without limits stands for a trial `deny`: every match would refuse.
                if rule.action == Action::Shadow && rule.limits.is_empty() {
                    worst = Some((0, Duration::ZERO, None));
                }
                match (rule.action, worst) {
                    (Action::Limit, Some((li, wait, key))) => {
                        if charge {
                            counters.refused.fetch_add(1, Ordering::Relaxed);
                        }
                        refuse_429(&mut d, p, rule, (li, key), wait, ip);
                        return d;
                    }
                    (_, Some(_)) => {
                        if charge {
                            counters.shadow_refused.fetch_add(1, Ordering::Relaxed);
                        }
                        d.shadow.push(rule.name.clone());
                    }
                    (_, None) => {
                        pending.extend(passing);
                        passed.push(ri);
                    }
                }
            }
        }
    }
    // Phase two: charge. A failure here is a lost race with another thread.
    for (ri, li, key) in pending {
        let rule = &p.rules[ri];
        let l = &rule.limits[li];
        let check = if charge {
            loaded.tables[ri][li].charge(&key, ip, l.cost).0
        } else {
            loaded.tables[ri][li].probe(&key, ip, l.cost).0
        };
        match check {
            Check::Refuse { wait } if rule.action == Action::Limit => {
                loaded.counters[ri].refused.fetch_add(1, Ordering::Relaxed);
                refuse_429(&mut d, p, rule, (li, Some(key)), wait, ip);
                return d;
            }
            Check::Refuse { .. } => {}
            Check::Pass { remaining, reset } => {
                if rule.action == Action::Limit
                    && d.quota.as_ref().is_none_or(|q| remaining < q.remaining)
                {
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
    }
    if charge {
        for ri in passed {
            loaded.counters[ri].allowed.fetch_add(1, Ordering::Relaxed);
        }
    }
    d
}

fn push_trace(trace: &mut Option<&mut Explanation>, rt: RuleTrace) {
    if let Some(t) = trace.as_deref_mut() {
        t.rules.push(rt);
    }
}

impl<C: Clock + Clone> Engine<C> {
    /// The `[fair_share]` ceiling's verdict on a request that passed every other
    /// check, counting it when admitted. `claimed`: the source's ledger record is net
    /// claims, which multiplies its network's share by `claimed_weight`. Call it last,
    /// so that only requests that will be forwarded use up the shared ceiling.
    pub fn fair_share(&self, id: &Identity<'_>, claimed: bool) -> FairVerdict {
        match self.fair() {
            Some(f) if f.applies(id.route) => f.admit(id.client_ip, claimed),
            _ => FairVerdict::NotApplicable,
        }
    }

    /// The `[fair_share]` counters, when the policy has the section.
    pub fn fair_share_stats(&self) -> Option<FairShareStats> {
        self.fair().map(|f| f.stats())
    }
}
