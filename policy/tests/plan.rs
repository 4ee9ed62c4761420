//! The plan/verdict split: `Engine::plan` + a shared store's verdicts +
//! `Engine::finish` decide exactly as `Engine::decide` does from its own tables.
//!
//! The store here is an in-memory GCRA with the semantics of the gateway's Redis
//! script (probe every limit, charge only if no limit rule refuses, charge a shadow
//! rule only if all its limits pass), on a time the test moves.

mod common;

use common::{advance, engine, ip, req, CHALLENGE, CREATE};
use policy::{Identity, OnStoreError, PlannedLimit, Verdict};
use std::collections::HashMap;
use std::time::Duration;

/// Theoretical arrival times by (limit id, key), in nanoseconds of the test's time.
#[derive(Default)]
struct Store {
    tat: HashMap<(String, String), u128>,
    now: u128,
}

impl Store {
    fn ask(&mut self, limits: &[PlannedLimit], charge: bool) -> Vec<Verdict> {
        let mut out = Vec::new();
        let mut next = Vec::new();
        let mut refused_groups = Vec::new();
        let mut refused = false;
        for l in limits {
            let t = l.interval().as_nanos();
            let tat = *self.tat.get(&(l.id.clone(), l.key.clone())).unwrap_or(&self.now);
            let earliest = (tat + t * u128::from(l.cost)).saturating_sub(t * u128::from(l.burst));
            if self.now < earliest {
                out.push(Verdict::Refuse {
                    wait: Duration::from_nanos((earliest - self.now) as u64),
                });
                refused_groups.push(l.group);
                refused |= !l.shadow;
                next.push(None);
            } else {
                let nt = tat.max(self.now) + t * u128::from(l.cost);
                let remaining = ((t * u128::from(l.burst) - (nt - self.now)) / t) as u32;
                let missing = l.burst - remaining;
                out.push(Verdict::Pass { remaining, reset: l.interval() * missing });
                next.push(Some(nt));
            }
        }
        if charge && !refused {
            for (l, nt) in limits.iter().zip(next) {
                if let (Some(nt), false) = (nt, refused_groups.contains(&l.group)) {
                    self.tat.insert((l.id.clone(), l.key.clone()), nt);
                }
            }
        }
        out
    }
}

const POLICY: &str = r#"
version = 1
[client]
trusted_proxies = []
[store]
on_store_error = "closed"
[lists.office]
cidrs = ["192.0.2.0/24"]
[lists.bad]
cidrs = ["198.51.100.0/24"]
[[rule]]
name = "office"
match = { list = "office" }
action = "allow"
[[rule]]
name = "trial"
match = { route = "provision-challenge" }
action = "shadow"
limits = [{ key = "ip", rate = "2/hour" }]
[[rule]]
name = "challenge"
match = { route = "provision-challenge" }
action = "limit"
limits = [{ key = "ip", rate = "4/hour" }, { key = "global", rate = "6/hour", burst = 6 }]
on_store_error = "open"
[[rule]]
name = "create"
match = { route = "provision-create" }
action = "limit"
limits = [{ key = "prefix", rate = "2/minute", cost = 2 }]
[[rule]]
name = "bad"
match = { list = "bad" }
action = "deny"
"#;

#[test]
fn plan_and_finish_decide_as_the_local_engine() {
    let (local, local_clock) = engine(POLICY);
    let (shared, _) = engine(POLICY);
    let policy = shared.current_policy();
    let mut store = Store::default();
    let peers = ["203.0.113.1", "203.0.113.2", "192.0.2.7", "198.51.100.9", "203.0.113.1"];
    let mut statuses = std::collections::BTreeMap::new();
    for step in 0..60u64 {
        let peer = ip(peers[(step % 5) as usize]);
        let path = if step % 3 == 0 { CREATE } else { CHALLENGE };
        let r = req("POST", path, peer, &[]);
        let want = local.decide(&r);
        let id = Identity::derive(&policy, r);
        let plan = shared.plan(&id);
        let verdicts = store.ask(plan.limits(), plan.charges());
        let got = shared.finish(plan, &verdicts);
        assert_eq!(got, want, "step {step}: {peer} {path}");
        *statuses.entry(got.status().unwrap_or(200)).or_insert(0) += 1;
        if !got.shadow.is_empty() {
            *statuses.entry(0).or_insert(0) += 1;
        }
        if step % 7 == 6 {
            advance(&local_clock, 40);
            store.now += Duration::from_secs(40).as_nanos();
        }
    }
    // Admitted, shadow-refused (0), refused by a limit and by the deny rule: all seen.
    let seen: Vec<u16> = statuses.keys().copied().collect();
    assert_eq!(seen, vec![0, 200, 403, 429], "{statuses:?}");
    assert_eq!(shared.stats().rules, local.stats().rules, "the rule counters agree");
}

#[test]
fn a_plan_lists_each_limit_with_its_id_key_rate_and_store_error_rule() {
    let (engine, _) = engine(POLICY);
    let policy = engine.current_policy();
    let id = Identity::derive(&policy, req("POST", CHALLENGE, ip("203.0.113.5"), &[]));
    let plan = engine.plan(&id);
    let got: Vec<_> = plan
        .limits()
        .iter()
        .map(|l| (l.id.as_str(), l.key.as_str(), l.burst, l.shadow, l.on_store_error))
        .collect();
    assert_eq!(
        got,
        vec![
            ("trial/ip 2/hour burst 2", "ip=203.0.113.5", 2, true, OnStoreError::Closed),
            ("challenge/ip 4/hour burst 4", "ip=203.0.113.5", 4, false, OnStoreError::Open),
            ("challenge/global 6/hour burst 6", "global", 6, false, OnStoreError::Open),
        ]
    );
    assert!(plan.charges() && plan.needs_store());
    assert!(plan.closed_rules().is_empty(), "the closed rule is a shadow rule");
    let id = Identity::derive(&policy, req("POST", CREATE, ip("203.0.113.5"), &[]));
    assert_eq!(engine.plan(&id).closed_rules(), vec!["create"], "[store] default applies");
    let id = Identity::derive(&policy, req("GET", "/client/v4/user", ip("192.0.2.1"), &[]));
    assert!(!engine.plan(&id).needs_store(), "an allowed client needs no store");
}

#[test]
fn a_limit_known_to_refuse_refuses_without_the_others_being_asked() {
    let (engine, _) = engine(POLICY);
    let policy = engine.current_policy();
    let id = Identity::derive(&policy, req("POST", CHALLENGE, ip("203.0.113.5"), &[]));
    let plan = engine.plan(&id);
    let wait = Duration::from_secs(90);
    let verdicts = [Verdict::NotAsked, Verdict::NotAsked, Verdict::Refuse { wait }];
    let d = engine.finish(plan, &verdicts);
    assert_eq!((d.status(), d.retry_after_secs), (Some(429), Some(90)));
    assert_eq!(d.rule.as_deref(), Some("challenge"));
    assert_eq!(engine.stats().tables.iter().map(|t| t.keys).sum::<usize>(), 0, "nothing charged");
}
