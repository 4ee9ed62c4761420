//! The attack archetypes: how scenarios name them, their defaults, and
//! their acceptance checks fed with synthetic results (no gateway needed).

use std::collections::BTreeMap;

use loadtest::agent::{Addressing, Archetype, Behaviour, Special};
use loadtest::attack::facts::{Holdings, HonestDuring};
use loadtest::attack::limits::{GlobalBudget, PolicyLimits, Quotas};
use loadtest::attack::{evader, replay, spray};
use loadtest::report::attacks::{
    botnet_cleanup_check, botnet_collateral_check, over_quota, pow_replay_check,
    quota_evader_check, rotate16_check, token_spray_check,
};
use loadtest::scenario::Scenario;
use loadtest::stats::AgentWindow;

fn scenario(archetype: &str) -> Scenario {
    let text = format!(
        "name = \"t\"\nduration_secs = 10\ntarget = {{ url = \"http://127.0.0.1:8787\" }}\n\n[[agents]]\narchetype = \"{archetype}\"\ncount = 2\narrival_per_sec = 1.0\n"
    );
    Scenario::parse(&text, "s.toml").expect("parses")
}

#[test]
fn attack_archetypes_parse_and_have_their_behaviour() {
    let cases = [
        ("rotate-ipv4-16", Archetype::RotateIpv4In16, Special::None, Addressing::RotateV4In16),
        ("botnet", Archetype::Botnet, Special::None, Addressing::Botnet16),
        ("token-spray", Archetype::TokenSpray, Special::TokenSpray, Addressing::Spray24),
        ("pow-replay", Archetype::PowReplay, Special::PowReplay, Addressing::FixedV4),
        ("quota-evader", Archetype::QuotaEvader, Special::QuotaEvader, Addressing::FixedV4),
    ];
    for (name, archetype, special, addressing) in cases {
        let s = scenario(name);
        assert_eq!(s.agents[0].archetype, archetype);
        assert_eq!(archetype.name(), name);
        assert!(Archetype::ALL.contains(&archetype));
        let b = Behaviour::for_group(&s.agents[0]);
        assert_eq!((b.special, b.addressing), (special, addressing), "{name}");
    }
    // The rotator and the botnet loop with a fresh account every run.
    let b = Behaviour::for_group(&scenario("botnet").agents[0]);
    assert!(b.fresh_account_per_run && !b.honour_retry_after);
    assert!(b.retry_delay.as_millis() >= 1000, "a botnet agent is modest on its own");
    assert!(Scenario::parse(
        "name = \"t\"\nduration_secs = 10\ntarget = { url = \"http://127.0.0.1:8787\" }\n[[agents]]\narchetype = \"rotate-ipv4-8\"\ncount = 1\narrival_per_sec = 1.0\n",
        "s.toml"
    )
    .is_err());
}

#[test]
fn the_shipped_default_scenario_holds_every_attack_and_enough_honest_deploys() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/default.toml");
    let s = Scenario::load(std::path::Path::new(path)).expect("default parses");
    for a in [
        Archetype::RotateIpv4In16,
        Archetype::Botnet,
        Archetype::TokenSpray,
        Archetype::PowReplay,
        Archetype::QuotaEvader,
    ] {
        assert!(s.agents.iter().any(|g| g.archetype == a), "{} missing", a.name());
    }
    let honest: u64 = s
        .agents
        .iter()
        .filter(|g| g.archetype == Archetype::WellBehaved)
        .map(|g| u64::from(g.count) * u64::from(Behaviour::for_group(g).deploys))
        .sum();
    assert!(honest >= 100, "{honest} honest deploys");
    assert!(s.duration_secs <= 100.0);
}

fn limits(per_day: &[(&str, u64)]) -> PolicyLimits {
    PolicyLimits {
        window_secs: 86_400,
        live: BTreeMap::new(),
        per_day: per_day.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        quotas: quotas(),
        global: vec![GlobalBudget {
            units: 15_000,
            window_secs: 3600,
            action: "harder_pow".into(),
        }],
    }
}

fn quotas() -> Quotas {
    Quotas {
        max_worker_scripts: 5,
        max_kv_namespaces: 10,
        max_d1_databases: 1,
        max_queues: 10,
        max_asset_files: 1000,
        max_asset_file_bytes: 5 * 1024 * 1024,
        max_body_bytes: 64 * 1024 * 1024,
    }
}

#[test]
fn rotate16_uses_the_16_limit_and_falls_back_to_24s() {
    let with16 = limits(&[("ipv4/16", 120), ("ipv4/24", 60)]);
    let c = rotate16_check("r", 120, 90, Some(&with16));
    assert_eq!(c.status, "PASS", "{c:?}");
    assert!(c.detail.contains("ipv4/16 = 120"), "{}", c.detail);
    assert_eq!(rotate16_check("r", 121, 90, Some(&with16)).status, "FAIL");

    let only24 = limits(&[("ipv4/24", 60)]);
    let c = rotate16_check("r", 300, 5, Some(&only24));
    assert_eq!(c.status, "PASS", "{c:?}");
    assert!(c.detail.contains("no ipv4/16 limit") && c.detail.contains("60 x 5"), "{}", c.detail);
    assert_eq!(rotate16_check("r", 301, 5, Some(&only24)).status, "FAIL");
    assert_eq!(rotate16_check("r", 1, 1, Some(&limits(&[]))).status, "SKIP");
    assert_eq!(rotate16_check("r", 1, 1, None).status, "SKIP");
}

#[test]
fn botnet_judges_total_cleanup_and_collateral_damage() {
    let l = limits(&[]);
    let g = l.global_budget();
    assert_eq!(botnet_cleanup_check("b", Some(15_000.0), g).status, "PASS");
    assert_eq!(botnet_cleanup_check("b", Some(15_001.0), g).status, "FAIL");
    assert_eq!(botnet_cleanup_check("b", None, g).status, "SKIP");
    // A refuse budget is preferred to a larger harder_pow one.
    let mut both = l.clone();
    both.global.push(GlobalBudget { units: 20_000, window_secs: 3600, action: "refuse".into() });
    assert_eq!(both.global_budget().map(|g| g.units), Some(20_000));

    let attack = [AgentWindow { from_ms: 10_000, until_ms: 50_000, wanted: 6, completed: 6 }];
    let honest: Vec<AgentWindow> = (0..120)
        .map(|i| AgentWindow {
            from_ms: i * 500,
            until_ms: i * 500 + 3000,
            wanted: 1,
            completed: u64::from(i % 50 != 7),
        })
        .collect();
    let during = HonestDuring::overlapping(&attack, &honest);
    // Agents running from 7 s (start + 3 s >= 10 s) to 50 s overlap the
    // attack's 10 s .. 50 s: i = 14 ..= 100; one of them (i = 57) failed.
    assert_eq!(during.agents, 87);
    let c = botnet_collateral_check("b", &during);
    assert_eq!((during.wanted, during.completed), (87, 86));
    assert_eq!(c.status, "FAIL", "86/87 is under 99%: {c:?}");
    let all_ok = HonestDuring { agents: 100, wanted: 100, completed: 99 };
    assert_eq!(botnet_collateral_check("b", &all_ok).status, "PASS");
    assert_eq!(botnet_collateral_check("b", &HonestDuring::default()).status, "FAIL");
    assert_eq!(HonestDuring::overlapping(&[], &honest), HonestDuring::default());
}

fn findings(items: &[(&str, u64)]) -> BTreeMap<String, u64> {
    items.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn token_spray_needs_refusals_and_an_untouched_probe() {
    let held = findings(&[
        (spray::SENT, 600),
        (spray::FORWARDED, 90),
        (spray::REFUSED, 510),
        (spray::PROBES, 1),
        (spray::PROBES_OK, 1),
    ]);
    assert_eq!(token_spray_check("t", &held).status, "PASS");
    let all_forwarded = findings(&[
        (spray::SENT, 600),
        (spray::FORWARDED, 600),
        (spray::PROBES, 1),
        (spray::PROBES_OK, 1),
    ]);
    assert_eq!(token_spray_check("t", &all_forwarded).status, "FAIL");
    let mut throttled = held.clone();
    throttled.insert(spray::PROBES_OK.into(), 0);
    throttled.insert(spray::PROBES_THROTTLED.into(), 1);
    assert_eq!(token_spray_check("t", &throttled).status, "FAIL");
    let mut no_probe = held;
    no_probe.remove(spray::PROBES);
    no_probe.remove(spray::PROBES_OK);
    assert_eq!(token_spray_check("t", &no_probe).status, "FAIL");
}

#[test]
fn pow_replay_counts_cheated_accounts() {
    let clean = findings(&[(replay::INDEBTED, 2), (replay::TRIED, 4), (replay::REFUSED, 4)]);
    assert_eq!(pow_replay_check("p", &clean).status, "PASS");
    for cheat in replay::CHEATS {
        let mut f = clean.clone();
        f.insert(cheat.into(), 1);
        let c = pow_replay_check("p", &f);
        assert_eq!(c.status, "FAIL", "{cheat}");
        assert!(c.detail.starts_with("1 accounts obtained by cheating"), "{}", c.detail);
    }
    assert_eq!(pow_replay_check("p", &BTreeMap::new()).status, "SKIP");
    // Refused by create-global before the work was looked at: no verdict.
    let limited = findings(&[
        (replay::INDEBTED, 2),
        (replay::TRIED, 4),
        (replay::REFUSED, 4),
        (replay::RATE_LIMITED, 4),
    ]);
    assert_eq!(pow_replay_check("p", &limited).status, "SKIP");
}

#[test]
fn quota_evader_is_judged_by_the_platforms_count() {
    let q = quotas();
    let ok = Holdings {
        scripts: 1,
        kv_namespaces: 10,
        d1_databases: 1,
        queues: 10,
        asset_files: 1000,
        asset_bytes: 1000 * 100,
    };
    assert!(over_quota(&ok, &q).is_empty());
    let f =
        findings(&[(evader::ACCOUNTS, 4), (evader::CONCURRENT, 30), (evader::CONCURRENT_OK, 12)]);
    assert_eq!(quota_evader_check("q", Some(&[ok]), Some(&q), &f).status, "PASS");
    // One account of four: three evasions never ran.
    let partial = findings(&[(evader::ACCOUNTS, 1)]);
    assert_eq!(quota_evader_check("q", Some(&[ok]), Some(&q), &partial).status, "SKIP");

    let two_d1 = Holdings { d1_databases: 2, ..ok };
    let c = quota_evader_check("q", Some(&[ok, two_d1]), Some(&q), &f);
    assert_eq!(c.status, "FAIL");
    assert!(c.detail.contains("d1 2/1"), "{}", c.detail);
    let big_file = Holdings { asset_files: 1, asset_bytes: 5 * 1024 * 1024 + 1024, ..ok };
    assert_eq!(over_quota(&big_file, &q).len(), 1);
    let too_many = Holdings { asset_files: 1200, asset_bytes: 1200, ..ok };
    assert!(over_quota(&too_many, &q)[0].starts_with("asset files 1200/1000"));

    let oversized = findings(&[(evader::OVERSIZED, 1), (evader::OVERSIZED_OK, 1)]);
    assert_eq!(quota_evader_check("q", Some(&[ok]), Some(&q), &oversized).status, "FAIL");
    assert_eq!(quota_evader_check("q", None, Some(&q), &f).status, "SKIP");
    assert_eq!(quota_evader_check("q", Some(&[]), Some(&q), &f).status, "SKIP");
}

#[test]
fn the_shipped_policy_reads_into_limits() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/default.toml");
    let l = PolicyLimits::from_policy(std::path::Path::new(path)).expect("reads");
    assert_eq!(l.per_day.get("ipv4/24"), Some(&60));
    assert_eq!(l.quotas.max_d1_databases, 1);
    assert!(l.global_budget().is_some());
}
