//! Proof-of-work that cannot be dodged: challenges bound to who fetched them, burned on
//! their first redemption, extra work chained to the platform's last checkpoint, and
//! the arithmetic of why forging costs more than working.

use policy::accounts::{SourceKeys, SourceKind};
use policy::ledger::BudgetAction;
use policy::platform::{trim_create_body, Redeemer};
use policy::pow::{
    forger_work_per_success, pass_probability, solve, spot_checks_against_tails,
    tail_forger_work_per_success, verify_and_trim, ChallengeBook, IssuedTo, PowError, PowPolicy,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn client(ip: &str) -> IssuedTo {
    IssuedTo::of(&SourceKeys::new(ip.parse().expect("ip"), None, None))
}

fn body(token: &str, checkpoints: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "challengeToken": token, "solution": {"checkpoints": checkpoints}
    }))
    .expect("json")
}

const SEED: [u8; 32] = [9; 32];

#[test]
fn a_challenge_is_judged_at_the_stricter_of_its_fetcher_and_its_redeemer() {
    let p = PowPolicy::default(); // 0.1 per unit: 60 units owe k+6
    let (k, g) = (8u32, 32u32);
    let book = ChallengeBook::from_policy(&p);
    let (clean, debtor) = (client("192.0.2.1"), client("198.51.100.1"));
    let mut rng = StdRng::seed_from_u64(1);
    let in_debt = Redeemer { issued_to: debtor, debt: 60 };

    // Fetched clean at k, redeemed by a debtor with the base work: refused.
    book.remember("clean-1", k, k, g, clean, 0);
    let base = solve(&SEED, k, g);
    let refused = trim_create_body(&body("clean-1", &base), &book, 1, &p, in_debt, &mut rng);
    assert_eq!(refused, Err(PowError::WrongCount { expected: 15, got: 9 }));
    // ... with the debtor's work done: verified and trimmed to the platform's k.
    book.remember("clean-2", k, k, g, clean, 0);
    let owed = solve(&SEED, 14, g);
    let (_, hashes) = trim_create_body(&body("clean-2", &owed), &book, 1, &p, in_debt, &mut rng)
        .expect("valid")
        .expect("trimmed");
    assert_eq!(hashes, 5 * u64::from(g), "chaining segment + 4 spot checks");
    // The fetcher redeeming its own clean challenge: forwarded as sent.
    book.remember("clean-3", k, k, g, clean, 0);
    let own = Redeemer { issued_to: clean, debt: 0 };
    assert_eq!(trim_create_body(&body("clean-3", &base), &book, 1, &p, own, &mut rng), Ok(None));
    // A debtor's own harder challenge is judged at the k' it was sent, even if its debt
    // grew while it solved (the client cannot know more than it was told).
    book.remember("own-harder", k, 14, g, debtor, 0);
    let grown = Redeemer { issued_to: debtor, debt: 100 };
    let fresh = solve(&[7; 32], 14, g);
    assert!(trim_create_body(&body("own-harder", &fresh), &book, 1, &p, grown, &mut rng).is_ok());
}

#[test]
fn extra_checkpoints_seen_in_an_earlier_solution_are_refused_until_they_expire() {
    let p = PowPolicy { spot_checks: 2, ..PowPolicy::default() };
    let (k, g) = (4u32, 16u32);
    let book = ChallengeBook::from_policy(&p);
    let debtor = client("198.51.100.3");
    let mut rng = StdRng::seed_from_u64(3);
    let me = Redeemer { issued_to: debtor, debt: 0 };
    // A made-up checkpoint after the chaining step, then a chain computed once.
    let reused = solve(b"a chain computed once", 4, g);
    let forged = |seed: &[u8]| {
        let mut cps = solve(seed, k + 1, g);
        cps.extend_from_slice(&reused);
        cps
    };
    // Every segment but the made-up one is valid; spot checks that miss it let the
    // first use through, and then the chain is spent.
    let mut passed = 0;
    let mut reused_refusals = 0;
    for i in 0..20u8 {
        let token = format!("harder-{i}");
        book.remember(&token, k, 10, g, debtor, 0);
        match trim_create_body(&body(&token, &forged(&[i; 32])), &book, 1, &p, me, &mut rng) {
            Ok(Some(_)) => passed += 1,
            Err(PowError::ReusedWork) => reused_refusals += 1,
            Err(PowError::Mismatch { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(passed <= 1, "the chain passed {passed} times");
    assert!(
        reused_refusals >= 5,
        "spot checks miss the made-up segment half the time: {reused_refusals}"
    );
    // Honest chains never collide; a spent digest is forgotten after a challenge
    // lifetime, when no challenge it could have answered is still open.
    book.remember("honest", k, 10, g, debtor, 0);
    let honest = solve(&[99; 32], 10, g);
    assert!(trim_create_body(&body("honest", &honest), &book, 1, &p, me, &mut rng).is_ok());
    let later = 1 + p.challenge_ttl_secs;
    book.remember("after-expiry", k, 10, g, debtor, later);
    let again =
        trim_create_body(&body("after-expiry", &honest), &book, later + 1, &p, me, &mut rng);
    assert!(matches!(again, Ok(Some(_))), "{again:?}");
}

#[test]
fn tokens_are_burned_and_unknown_ones_are_refused_to_a_debtor() {
    let p = PowPolicy::default();
    let book = ChallengeBook::from_policy(&p);
    let debtor = client("198.51.100.2");
    let mut rng = StdRng::seed_from_u64(2);
    let in_debt = Redeemer { issued_to: debtor, debt: 60 };
    book.remember("harder", 4, 10, 16, debtor, 0);
    let short = body("harder", &solve(&SEED, 4, 16));
    assert!(matches!(
        trim_create_body(&short, &book, 1, &p, in_debt, &mut rng),
        Err(PowError::WrongCount { .. })
    ));
    assert_eq!(trim_create_body(&short, &book, 2, &p, in_debt, &mut rng), Err(PowError::Burned));
    let full = body("harder", &solve(&SEED, 10, 16));
    assert_eq!(trim_create_body(&full, &book, 2, &p, in_debt, &mut rng), Err(PowError::Burned));
    // Unknown: refused to a source in debt, forwarded for one without.
    let unknown = body("never-seen", &solve(&SEED, 4, 16));
    let refusal = trim_create_body(&unknown, &book, 2, &p, in_debt, &mut rng);
    assert_eq!(refusal, Err(PowError::NotIssued));
    let clean = Redeemer { issued_to: client("192.0.2.2"), debt: 0 };
    assert_eq!(trim_create_body(&unknown, &book, 2, &p, clean, &mut rng), Ok(None));
    // Past its lifetime a burned token is forgotten like any other.
    let later = p.challenge_ttl_secs + 1;
    assert_eq!(trim_create_body(&short, &book, later, &p, clean, &mut rng), Ok(None));
}

#[test]
fn the_extra_work_must_start_at_the_clients_checkpoint_k() {
    let (k, kp, g) = (4u32, 14u32, 16u32);
    let honest = solve(&SEED, k, g);
    // A valid 10-segment tail from elsewhere, hung after the platform's checkpoints.
    let tail = solve(b"precomputed once", kp - k, g).split_off(1);
    let forged: Vec<String> = honest.iter().chain(tail.iter()).cloned().collect();
    for seed in 0..50u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        // Even with a single spot check the junction is always checked.
        assert_eq!(
            verify_and_trim(&forged, k, kp, g, 1, &mut rng),
            Err(PowError::Mismatch { segment: k as usize })
        );
    }
    let mut rng = StdRng::seed_from_u64(0);
    let (_, hashes) = verify_and_trim(&solve(&SEED, kp, g), k, kp, g, 1, &mut rng).expect("honest");
    assert_eq!(hashes, 2 * u64::from(g), "the chaining segment and one spot check");
}

/// The README's claim: for every number of extra segments the default policy can ask
/// for (platform k up to 64, `max_factor` 8) and every number of faked segments, the
/// expected work per accepted forgery is at least the honest work.
#[test]
fn forging_never_pays_less_per_success_than_honest_work() {
    let p = PowPolicy::default();
    let g = 4096u64;
    let s = u64::from(p.spot_checks);
    let max_m = 64 * u64::from(p.max_factor - 1);
    for m in 1..=max_m {
        let honest = (m * g) as f64;
        for f in 1..=m {
            if let Some(forged) = forger_work_per_success(m, f, s, g) {
                assert!(forged >= honest * (1.0 - 1e-12), "m={m} f={f}: {forged} < {honest}");
            }
        }
    }
    // The formula at the default harder_pow budget: 6 extra segments, one faked, the
    // 4 checks drawn from the 5 after the chaining segment: passes 1 time in 5.
    assert!((pass_probability(5, 1, 4) - 0.2).abs() < 1e-12);
    let work = forger_work_per_success(6, 1, 4, g).expect("can pass");
    assert!((work - 25.0 * g as f64).abs() < 1e-6, "5 segments per try, 5 tries: {work}");
    assert_eq!(forger_work_per_success(6, 6, 4, g), None, "the chaining segment is checked");
}

/// The pass probability the formula predicts is what the verifier does.
#[test]
fn the_pass_probability_matches_the_verifier() {
    let (k, kp, g) = (2u32, 12u32, 8u32);
    let mut forged = solve(&SEED, kp, g);
    // Fake the last segment only: one faked segment among the 9 after the chaining one.
    forged[kp as usize] = solve(b"made up", 0, g)[0].clone();
    let runs = 2000u64;
    let passed = (0..runs)
        .filter(|&seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            verify_and_trim(&forged, k, kp, g, 4, &mut rng).is_ok()
        })
        .count() as f64;
    let predicted = pass_probability(9, 1, 4); // 5/9
    let observed = passed / runs as f64;
    assert!((observed - predicted).abs() < 0.05, "observed {observed}, predicted {predicted}");
}

/// A tail precomputed once and hung after one made-up checkpoint saves every segment
/// after it, so it needs more checks than the per-segment model. `rules/default.toml`
/// sizes `spot_checks` so that for a single address in debt (from its `ip` harder_pow
/// budget up to its refuse budget, platform k = 8, g = 4096) such a forger pays at least
/// the honest work per success.
#[test]
fn default_toml_spot_checks_make_a_reused_tail_cost_more_than_the_work() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/default.toml");
    let text = std::fs::read_to_string(path).expect("rules/default.toml");
    let policy = policy::compile_str("default.toml", &text).expect("compiles");
    let pow = policy.pow();
    let ip_budget = |action: BudgetAction| {
        policy
            .budgets()
            .rules
            .iter()
            .find(|r| r.kind == SourceKind::Ip && r.action == action)
            .map(|r| r.units)
            .expect("an ip budget")
    };
    let (harder, refuse) = (ip_budget(BudgetAction::HarderPow), ip_budget(BudgetAction::Refuse));
    let (k, g) = (8u32, 4096u32);
    let s = u64::from(pow.spot_checks);
    let mut widest = 0;
    for debt in harder..refuse {
        let m = u64::from(pow.difficulty_for(debt, k, g) - k);
        widest = widest.max(m);
        let honest = ((u64::from(k) + m) * u64::from(g)) as f64;
        if let Some(forged) = tail_forger_work_per_success(k.into(), m, s, g.into()) {
            assert!(
                forged >= honest,
                "debt {debt}, m={m}: a reused tail costs {forged} < {honest}"
            );
        }
        assert!(s >= spot_checks_against_tails(k.into(), m), "m={m}");
    }
    assert_eq!(widest, 15, "an address owes 6 to 15 extra segments before it is refused");
    // The library default (4) would let a reused tail pay at the top of that range.
    let at_four = tail_forger_work_per_success(8, 15, 4, 4096).expect("passes");
    assert!(at_four < ((8 + 15) * 4096) as f64);
    assert_eq!(spot_checks_against_tails(8, 15), 9);
    // Each verify stays bounded: (spot_checks + 1) * g.
    assert!((s + 1) * u64::from(g) <= 10 * 4096);
}
