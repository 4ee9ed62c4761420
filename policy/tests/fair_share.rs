//! `[fair_share]` on a fake clock: a botnet over many /16s saturating creation cannot
//! lock honest newcomers out, a /16 rotator is held by its /16 limit, claimed history
//! buys a larger share, memory stays bounded, and the plain global limit it replaces
//! is shown to be the lockout.

mod common;
use common::*;
use policy::clock::FakeRelativeClock;
use policy::{compile_file, Engine, FairVerdict, Identity};
use std::path::Path;

const FAIR: &str = r#"
version = 1
[fair_share]
ceiling = "2000/hour"
share_above = 0.5
claimed_weight = 4
"#;

/// A create request from `addr` through every check of the engine: the rules, then the
/// fair-share ceiling, as the gateway runs them.
fn create(e: &Engine<FakeRelativeClock>, addr: &str, claimed: bool) -> bool {
    let policy = e.current_policy();
    let r = req("POST", CREATE, ip(addr), &[]);
    let id = Identity::derive(&policy, r);
    if !e.decide_identified(&id).is_allowed() {
        return false;
    }
    !matches!(e.fair_share(&id, claimed), FairVerdict::Refuse { .. })
}

/// Drives a botnet over 100 /16s (10 requests per /16 per minute, far above its share)
/// for two hours while two honest agents a minute arrive from untouched /16s and ask
/// for one account each (a second one a minute later). Returns (botnet admitted,
/// honest admitted, honest asked).
fn botnet_and_newcomers(
    e: &Engine<FakeRelativeClock>,
    clock: &FakeRelativeClock,
) -> (u32, u32, u32) {
    let (mut bot, mut honest, mut asked) = (0, 0, 0);
    for minute in 0..120u32 {
        for round in 0..10u32 {
            for net in 0..100u32 {
                let addr =
                    format!("{}.{}.{}.{}", 20 + net / 200, net % 200, round, minute % 250 + 1);
                bot += u32::from(create(e, &addr, false));
            }
        }
        for agent in 0..2u32 {
            let n = minute * 2 + agent;
            let addr = format!("{}.{}.7.9", 100 + n / 250, n % 250);
            for _ in 0..2 {
                asked += 1;
                honest += u32::from(create(e, &addr, false));
            }
        }
        advance(clock, 60);
    }
    (bot, honest, asked)
}

#[test]
fn a_botnet_over_100_16s_cannot_lock_honest_newcomers_out() {
    let (e, clock) = engine(FAIR);
    let (bot, honest, asked) = botnet_and_newcomers(&e, &clock);
    eprintln!("fair share: botnet {bot}, honest {honest} of {asked}");
    assert!(honest * 100 >= asked * 99, "honest got {honest} of {asked}");
    // The ceiling held: two hours are at most two windows of 2000.
    assert!(bot + honest <= 4000, "admitted {bot} + {honest}");
    // The botnet got capacity too (it is not blanket-refused), but never all of it.
    assert!(bot > 0 && bot < 4000, "botnet got {bot}");
    let stats = e.fair_share_stats().expect("section present");
    assert!(stats.admitted_in_window <= 2000.0, "{stats:?}");
}

#[test]
fn the_plain_global_limit_it_replaces_is_a_lockout() {
    let (e, clock) = engine(
        r#"
version = 1
[[rule]]
name = "create-global"
match = { route = "provision-create" }
action = "limit"
limits = [{ key = "global", rate = "2000/hour", burst = 200 }]
"#,
    );
    let (_, honest, asked) = botnet_and_newcomers(&e, &clock);
    eprintln!("plain global: honest {honest} of {asked}");
    assert!(honest * 2 < asked, "honest got {honest} of {asked} under the plain global limit");
}

#[test]
fn a_16_rotator_gets_at_most_its_16_limit() {
    let (e, clock) = engine(
        r#"
version = 1
[[rule]]
name = "create-per-16"
match = { route = "provision-create" }
action = "limit"
limits = [{ key = "ipv4/16", rate = "60/hour", burst = 20 }]
[fair_share]
ceiling = "2000/hour"
"#,
    );
    let mut got = 0u32;
    // Every request from a fresh /24 of 198.51.0.0/16, for one hour.
    for minute in 0..60u32 {
        for i in 0..5u32 {
            let n = minute * 5 + i;
            got += u32::from(create(&e, &format!("198.51.{}.{}", n % 256, n / 256 + 1), false));
        }
        advance(&clock, 60);
    }
    // Burst 20 plus one per minute refilled over the hour.
    assert!(got <= 20 + 60, "the rotator got {got}");
    assert!(got >= 60, "the /16 limit admits what it says: {got}");
    // Another /16 is untouched.
    assert!(create(&e, "203.0.113.5", false));
}

#[test]
fn claimed_history_buys_a_larger_share_under_saturation() {
    let (e, clock) = engine(FAIR);
    // The botnet saturates the first-come part of the ceiling and sits at its share.
    for round in 0..30u32 {
        for net in 0..100u32 {
            create(&e, &format!("20.{net}.{round}.1"), false);
        }
    }
    advance(&clock, 60);
    let (mut claimed, mut unclaimed) = (0u32, 0u32);
    for _ in 0..40 {
        claimed += u32::from(create(&e, "100.1.1.1", true));
        unclaimed += u32::from(create(&e, "100.2.1.1", false));
    }
    eprintln!("claimed {claimed}, unclaimed {unclaimed}");
    assert!(unclaimed >= 1, "an unclaimed newcomer still gets in");
    assert!(claimed >= 3 * unclaimed, "claimed {claimed} vs unclaimed {unclaimed}");
}

#[test]
fn tracked_networks_are_bounded_and_counters_survive_an_unchanged_reload() {
    let src = "version = 1\n[fair_share]\nceiling = \"100/hour\"\nmax_networks = 10\n";
    let (e, clock) = engine(src);
    for n in 0..50u32 {
        create(&e, &format!("{}.1.1.1", n + 1), false);
    }
    let stats = e.fair_share_stats().expect("present");
    assert!(stats.networks <= 11, "{stats:?}");
    assert_eq!(stats.overflowed, 40);
    e.reload(policy::compile_str("p.toml", src).expect("compiles"));
    let kept = e.fair_share_stats().expect("present");
    assert!(kept.admitted_in_window > 0.0, "{kept:?}");
    // Networks silent for two windows are forgotten.
    advance(&clock, 2 * 3600 + 1);
    create(&e, "1.1.1.1", false);
    assert_eq!(e.fair_share_stats().expect("present").networks, 1);
}

#[test]
fn only_the_covered_routes_are_counted_and_the_valid_fixture_compiles() {
    let (e, _) = engine(FAIR);
    let policy = e.current_policy();
    let id = Identity::derive(&policy, req("POST", CHALLENGE, ip("192.0.2.1"), &[]));
    assert_eq!(e.fair_share(&id, false), FairVerdict::NotApplicable);
    let p = compile_file(Path::new("tests/fixtures/valid/fair_share.toml")).expect("compiles");
    assert!(p.fair_share_covers(policy::RouteClass::ProvisionChallenge));
    assert!(!p.fair_share_covers(policy::RouteClass::DeployWrite));
}

#[test]
fn a_refusal_says_what_to_do_and_when() {
    let (e, _) =
        engine("version = 1\n[fair_share]\nceiling = \"2/hour\"\nadvice = \"or claim one\"\n");
    assert!(create(&e, "192.0.2.1", false));
    assert!(create(&e, "198.51.100.1", false));
    let policy = e.current_policy();
    let id = Identity::derive(&policy, req("POST", CREATE, ip("203.0.113.1"), &[]));
    match e.fair_share(&id, false) {
        FairVerdict::Refuse { retry_after_secs, message } => {
            assert_eq!(retry_after_secs, 3600);
            assert!(message.contains("limit of 2 temporary accounts per hour"), "{message}");
            assert!(message.ends_with("Retry in 3600 seconds, or claim one."), "{message}");
        }
        v => panic!("not refused: {v:?}"),
    }
}

#[test]
fn explain_shows_where_a_network_stands_without_counting() {
    let (e, _) = engine("version = 1\n[fair_share]\nceiling = \"4/hour\"\n");
    for addr in ["192.0.2.1", "192.0.3.1", "198.51.100.1"] {
        assert!(create(&e, addr, false));
    }
    let text = e.explain(&req("POST", CREATE, ip("192.0.9.9"), &[])).to_string();
    assert!(
        text.contains("fair share: network 192.0.0.0/16 holds 2.0, its share of what is left 0.5 (3 of 4 in the window, 2 networks, sharing above 2): would REFUSE"),
        "{text}"
    );
    let newcomer = e.explain(&req("POST", CREATE, ip("203.0.113.1"), &[])).to_string();
    assert!(newcomer.contains("3 networks") && newcomer.contains("would admit"), "{newcomer}");
    // Explaining counted nothing.
    assert_eq!(e.fair_share_stats().map(|s| s.admitted_in_window), Some(3.0));
    let other = e.explain(&req("POST", CHALLENGE, ip("203.0.113.1"), &[])).to_string();
    assert!(!other.contains("fair share"), "{other}");
}
