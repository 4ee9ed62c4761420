use std::sync::Arc;

use policy::Engine;

use super::render;
use crate::clock::{ManualClock, SharedClock};
use crate::fleet::conn::Health;
use crate::tracker::Tracker;

const POLICY: &str = r#"
version = 1
[fair_share]
ceiling = "100/hour"
[[rule]]
name = "per-ip"
action = "limit"
limits = [{ key = "ip", rate = "10/minute", burst = 10 }]
"#;

fn sources() -> (Arc<Engine>, Arc<Tracker>, SharedClock) {
    let policy = policy::compile_str("p.toml", POLICY).expect("policy");
    let tracker = Tracker::new(&policy, None, None).expect("tracker");
    let clock: SharedClock = ManualClock::at(1_700_000_000);
    (Arc::new(Engine::new(policy)), Arc::new(tracker), clock)
}

#[test]
fn every_family_is_typed_and_helped_and_plain_families_have_no_empty_braces() {
    let (engine, tracker, clock) = sources();
    let text = render(&engine, &tracker, &clock);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let base =
            name.trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum");
        assert!(
            text.contains(&format!("# TYPE {base} ")) || text.contains(&format!("# TYPE {name} ")),
            "{line} has no TYPE:\n{text}"
        );
        assert!(!line.contains("{}"), "{line}");
    }
    assert!(text.contains("# TYPE gateway_rule_requests_total counter"), "{text}");
    assert!(text.contains("gateway_rule_requests_total{rule=\"per-ip\",outcome=\"allowed\"} 0"));
    assert!(text.contains("# TYPE gateway_cleanup_units_total gauge"), "{text}");
    assert!(text.contains("gateway_fair_share_ceiling 100"), "{text}");
    assert!(text.contains("gateway_fair_share_admitted 0.0"), "{text}");
    assert!(text.contains("gateway_accounts{state=\"live\"} 0"), "{text}");
}

#[test]
fn store_health_is_exported_once_registered() {
    let (engine, tracker, clock) = sources();
    let health = Arc::new(Health::default());
    health.record::<(), ()>(&Ok(()));
    health.record::<(), ()>(&Err(()));
    health.record::<(), ()>(&Ok(()));
    super::register_store_health(health);
    let text = render(&engine, &tracker, &clock);
    assert!(text.contains("gateway_store_up 1"), "{text}");
    assert!(text.contains("gateway_store_calls_total 3"), "{text}");
    assert!(text.contains("gateway_store_errors_total 1"), "{text}");
}

#[test]
fn budget_trips_count_refusals_and_harder_proof_of_work() {
    use super::observe;
    use crate::stage::context::RequestCtx;
    use crate::stage::refusal::{Refusal, Why};
    use std::time::Instant;

    let m = super::global();
    let get = |action: &'static str| m.budget_trips.get_or_create(&[("action", action)]).get();
    let (refuse, harder) = (get("refuse"), get("harder_pow"));
    let mut asked_harder = RequestCtx { pow_debt: 30, ..Default::default() };
    observe::decided(&mut asked_harder, Instant::now(), &Ok(()));
    assert_eq!(asked_harder.obs.refused, None);
    let mut refused = RequestCtx::default();
    observe::decided(&mut refused, Instant::now(), &Err(Refusal::new(Why::Budget, "spent")));
    assert_eq!(refused.obs.refused, Some(Why::Budget));
    let mut clean = RequestCtx::default();
    observe::decided(&mut clean, Instant::now(), &Ok(()));
    assert_eq!((get("refuse") - refuse, get("harder_pow") - harder), (1, 1));

    let (engine, tracker, clock) = sources();
    let text = render(&engine, &tracker, &clock);
    assert!(
        text.contains(
            "gateway_decision_duration_seconds_bucket{le=\"+Inf\",route=\"unclassified\"}"
        ) || text.contains(
            "gateway_decision_duration_seconds_bucket{route=\"unclassified\",le=\"+Inf\"}"
        ),
        "{text}"
    );
    assert!(text.contains("gateway_budget_trips_total{action=\"refuse\"}"), "{text}");
}
