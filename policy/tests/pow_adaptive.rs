//! Adaptive proof-of-work: harder challenges, spot-checked extra segments, trimming.

use base64::Engine as _;
mod common;

use common::{errors_of, policy_with};
use policy::accounts::SourceKeys;
use policy::platform::{parse_challenge, rewrite_challenge, trim_create_body, Redeemer};
use policy::pow::{
    difficulty_for, solve, verify_and_trim, ChallengeBook, IssuedTo, PowError, PowPolicy, Redeemed,
    WRANGLER_MAX_WORK,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

const SEED_B64URL: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"; // bytes 0..32

fn seed() -> Vec<u8> {
    (0u8..32).collect()
}

fn client(ip: &str) -> IssuedTo {
    IssuedTo::of(&SourceKeys::new(ip.parse().expect("ip"), None, None))
}

fn tamper(cp: &str) -> String {
    let mut b = base64::engine::general_purpose::STANDARD.decode(cp).expect("b64");
    b[0] ^= 1;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn correct_longer_chain_passes_and_is_trimmed() {
    let (k, kp, g) = (4u32, 10u32, 64u32);
    let chain = solve(&seed(), kp, g);
    assert_eq!(chain.len(), 11);
    // The platform's own solution is the prefix of the longer chain.
    assert_eq!(solve(&seed(), k, g), chain[..5]);
    let mut rng = StdRng::seed_from_u64(7);
    let (trimmed, hashes) = verify_and_trim(&chain, k, kp, g, 3, &mut rng).expect("valid");
    assert_eq!(trimmed, chain[..=4]);
    assert_eq!(hashes, 4 * u64::from(g), "the chaining segment and 3 spot checks");
    // Checking every extra segment.
    let (_, hashes) = verify_and_trim(&chain, k, kp, g, 100, &mut rng).expect("valid");
    assert_eq!(hashes, 6 * u64::from(g), "bounded by the number of extra segments");
    // k' == k: nothing extra to check, nothing spent.
    let (t, hashes) = verify_and_trim(&chain[..5], k, k, g, 4, &mut rng).expect("valid");
    assert_eq!((t.len(), hashes), (5, 0));
}

#[test]
fn every_tampered_extra_checkpoint_is_rejected() {
    let (k, kp, g) = (3u32, 9u32, 32u32);
    let chain = solve(&seed(), kp, g);
    let mut rng = StdRng::seed_from_u64(1);
    // Tampering cp[j] for j in k+1..=k' breaks segment j-1; tampering cp[k] breaks segment k.
    for j in (k as usize)..=(kp as usize) {
        let mut bad = chain.clone();
        bad[j] = tamper(&bad[j]);
        let err = verify_and_trim(&bad, k, kp, g, kp - k, &mut rng).expect_err("tampered");
        assert!(matches!(err, PowError::Mismatch { .. }), "j={j}: {err:?}");
        assert!(err.to_string().contains("Request a new challenge"), "{err}");
    }
    // Malformed and wrong-length solutions.
    let mut bad = chain.clone();
    bad[7] = "not base64!".into();
    assert_eq!(
        verify_and_trim(&bad, k, kp, g, 6, &mut rng),
        Err(PowError::BadCheckpoint { index: 7 })
    );
    assert_eq!(
        verify_and_trim(&chain[..4], k, kp, g, 6, &mut rng),
        Err(PowError::WrongCount { expected: 10, got: 4 })
    );
    assert!(matches!(
        verify_and_trim(&chain, 9, 3, g, 6, &mut rng),
        Err(PowError::BadDifficulty { .. })
    ));
}

#[test]
fn spot_checks_bound_the_work_and_catch_cheats_probabilistically() {
    let (k, kp, g) = (2u32, 42u32, 16u32);
    let chain = solve(&seed(), kp, g);
    let mut cheat = chain.clone();
    cheat[30] = tamper(&cheat[30]);
    let mut caught = 0;
    for s in 0..200u64 {
        let mut rng = StdRng::seed_from_u64(s);
        match verify_and_trim(&cheat, k, kp, g, 4, &mut rng) {
            Err(PowError::Mismatch { .. }) => caught += 1,
            Ok((_, hashes)) => assert!(hashes <= 5 * u64::from(g)),
            Err(e) => panic!("{e}"),
        }
        let (_, hashes) = verify_and_trim(&chain, k, kp, g, 4, &mut rng).expect("honest");
        assert_eq!(hashes, 5 * u64::from(g), "the chaining segment and 4 spot checks");
    }
    // One bad checkpoint breaks the 2 segments around it, out of the 39 the 4 checks
    // are drawn from: caught 1 - C(37,4)/C(39,4), about 20% of the time.
    assert!((15..=70).contains(&caught), "caught {caught}/200");
}

#[test]
fn difficulty_grows_with_debt_within_caps() {
    let p = PowPolicy::default(); // 0.1 per unit, max 8x
    assert_eq!(difficulty_for(0, 8, 4096, &p), 8);
    assert_eq!(difficulty_for(1, 8, 4096, &p), 9);
    assert_eq!(difficulty_for(60, 8, 4096, &p), 14);
    assert_eq!(difficulty_for(10_000, 8, 4096, &p), 64, "max_factor");
    assert_eq!(difficulty_for(u64::MAX, 8, 4096, &p), 64);
    // wrangler's cap: k' * g <= 64,000,000.
    let g = 4_000_000;
    assert_eq!(p.difficulty_for(1000, 8, g), 16);
    assert!(u64::from(p.difficulty_for(1000, 8, g)) * u64::from(g) <= WRANGLER_MAX_WORK);
    // A platform challenge already at the cap is never made easier.
    assert_eq!(p.difficulty_for(1000, 20, g), 20);
    let off = PowPolicy { extra_checkpoints_per_unit: 0.0, ..PowPolicy::default() };
    assert_eq!(off.difficulty_for(1000, 8, 4096), 8);
}

#[test]
fn challenge_rewrite_book_and_body_trim_end_to_end() {
    let envelope = format!(
        r#"{{"success":true,"errors":[],"messages":[],"result":{{"challengeToken":"ct-123","seed":"{SEED_B64URL}","k":4,"g":64}}}}"#
    );
    let ch = parse_challenge(envelope.as_bytes()).expect("challenge");
    assert_eq!((ch.seed.clone(), ch.k, ch.g), (seed(), 4, 64));
    assert!(!format!("{ch:?}").contains("ct-123"));
    let p = PowPolicy::default();
    let kp = p.difficulty_for(30, ch.k, ch.g);
    assert_eq!(kp, 7);
    let rewritten = rewrite_challenge(envelope.as_bytes(), kp).expect("rewrite");
    let again = parse_challenge(&rewritten).expect("parse");
    assert_eq!(
        (again.k, again.g, again.seed.clone(), again.challenge_token.as_str()),
        (7, 64, seed(), "ct-123")
    );
    assert!(rewrite_challenge(envelope.as_bytes(), 3).is_err(), "never easier");
    assert!(rewrite_challenge(envelope.as_bytes(), 2_000_000).is_err(), "over wrangler's cap");
    let book = ChallengeBook::from_policy(&p);
    book.remember(&ch.challenge_token, ch.k, kp, ch.g, client("198.51.100.1"), 1_000);
    let redeemer = Redeemer { issued_to: client("198.51.100.1"), debt: 30 };
    // The client (wrangler) solves the rewritten challenge.
    let solution = solve(&again.seed, again.k, again.g);
    let body = serde_json::json!({
        "termsOfService": "https://example/tos", "privacyPolicy": "https://example/pp",
        "acceptTermsOfService": "yes", "challengeToken": "ct-123",
        "solution": {"checkpoints": solution}
    });
    let body = serde_json::to_vec(&body).expect("json");
    let mut rng = StdRng::seed_from_u64(3);
    let (out, hashes) =
        trim_create_body(&body, &book, 1_010, &p, redeemer, &mut rng).expect("ok").expect("known");
    assert_eq!(hashes, 3 * 64, "the chaining segment and the 2 other extra segments");
    let out: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(out["solution"]["checkpoints"], serde_json::json!(solve(&seed(), 4, 64)));
    assert_eq!(out["acceptTermsOfService"], "yes");
    // Single use: a replay is refused by the gateway, never forwarded.
    assert_eq!(
        trim_create_body(&body, &book, 1_011, &p, redeemer, &mut rng),
        Err(PowError::Burned)
    );
}

#[test]
fn challenge_book_is_bounded_and_expiring() {
    let book = ChallengeBook::new(3, 100);
    let to = client("198.51.100.2");
    for i in 0..5 {
        book.remember(&format!("t{i}"), 1, 2, 8, to, 0);
    }
    assert_eq!(book.len(), 3);
    assert_eq!(book.redeem("t0", 1), Redeemed::Unknown, "oldest evicted");
    assert!(
        matches!(book.redeem("t4", 1), Redeemed::Open(r) if r.k_prime == 2 && r.issued_to == to)
    );
    assert_eq!(book.redeem("t4", 1), Redeemed::Burned, "single use");
    assert_eq!(book.len(), 3, "a burned challenge stays in the book");
    assert_eq!(book.redeem("t3", 100), Redeemed::Unknown, "expired");
    book.remember("late", 1, 2, 8, to, 500);
    assert_eq!(book.len(), 1, "expired entries were swept on insert");
    assert!(!format!("{book:?}").contains("late"));
}

#[test]
fn pow_section_compiles_with_defaults_and_located_errors() {
    assert_eq!(policy_with("").pow(), &PowPolicy::default());
    let p = policy_with("[pow]\nextra_checkpoints_per_unit = 1\nmax_factor = 2\nspot_checks = 8\n");
    let p = p.pow();
    assert_eq!((p.extra_checkpoints_per_unit, p.max_factor, p.spot_checks), (1.0, 2, 8));
    assert_eq!(
        errors_of("[pow]\nspot_check = 1\n"),
        "p.toml:3:1: unknown field \"spot_check\", expected one of \"extra_checkpoints_per_unit\", \"max_factor\", \"max_work\", \"spot_checks\", \"challenge_ttl_secs\", \"max_challenges\"; did you mean \"spot_checks\"?"
    );
    assert_eq!(
        errors_of("[pow]\nmax_work = 64000001\nextra_checkpoints_per_unit = -0.5\n"),
        "p.toml:3:12: max_work = 64000001 is above wrangler's cap of 64000000; wrangler would refuse the challenge\n\
         p.toml:4:30: extra_checkpoints_per_unit must be a number 0 or more, got -0.5"
    );
}

/// wrangler sends `solution.checkpoints` as ONE base64 string of all digests back to
/// back; the trimmed body must keep that form.
#[test]
fn concatenated_checkpoints_are_verified_and_trimmed_in_the_same_form() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use policy::platform::trim_create_body;
    use policy::pow::{solve, ChallengeBook};
    let seed = [7u8; 32];
    let (k, k_prime, g) = (2u32, 5u32, 16u32);
    let book = ChallengeBook::new(16, 600);
    let to = client("198.51.100.3");
    let redeemer = Redeemer { issued_to: to, debt: 0 };
    let p = PowPolicy { spot_checks: 8, ..PowPolicy::default() };
    book.remember("tok-concat", k, k_prime, g, to, 1_000);
    let chain = solve(&seed, k_prime, g);
    let joined: Vec<u8> = chain.iter().flat_map(|c| STANDARD.decode(c).unwrap()).collect();
    let body = serde_json::json!({"challengeToken": "tok-concat", "solution": {"checkpoints": STANDARD.encode(&joined)}});
    let mut rng = rand::rngs::mock::StepRng::new(0, 1);
    let (out, hashes) =
        trim_create_body(body.to_string().as_bytes(), &book, 1_001, &p, redeemer, &mut rng)
            .expect("valid longer chain")
            .expect("challenge was made harder");
    assert_eq!(hashes, u64::from((k_prime - k) * g), "every extra segment checked");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let forwarded =
        STANDARD.decode(v["solution"]["checkpoints"].as_str().expect("still one string")).unwrap();
    assert_eq!(forwarded, joined[..(k as usize + 1) * 32].to_vec());

    // A tampered extra digest in the string form is caught.
    book.remember("tok-bad", k, k_prime, g, to, 1_000);
    let mut bad = joined.clone();
    bad[(k as usize + 2) * 32] ^= 1;
    let body = serde_json::json!({"challengeToken": "tok-bad", "solution": {"checkpoints": STANDARD.encode(&bad)}});
    assert!(trim_create_body(body.to_string().as_bytes(), &book, 1_001, &p, redeemer, &mut rng)
        .is_err());
}
