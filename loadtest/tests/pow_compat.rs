//! The tester's own proof-of-work client agrees with the reference
//! platform's verifier, in both wire encodings.

use loadtest::pow::{decode_seed, encode, solve, Encoding};

#[test]
fn solutions_verify_on_the_platform() {
    let seed = [42u8; 32];
    let cps = solve(&seed, 5, 100);
    assert!(refplatform::pow::verify(&seed, 5, 100, &cps, 100, &mut rand::thread_rng()).is_ok());
    assert_eq!(cps, refplatform::pow::solve(&seed, 5, 100));
    for enc in [Encoding::Concatenated, Encoding::List] {
        let decoded = refplatform::pow::decode_checkpoints(&encode(&cps, enc)).expect("decodes");
        assert_eq!(decoded, cps);
    }
}

#[test]
fn platform_seeds_decode() {
    let mut book =
        refplatform::pow::ChallengeBook::new(2, 8, std::time::Duration::from_secs(60), 2);
    let ch = book.issue(time::OffsetDateTime::now_utc());
    let seed = decode_seed(&ch.seed).expect("seed decodes");
    assert_eq!(seed, ch.seed_bytes().expect("platform decodes too"));
    let cps = solve(&seed, ch.k, ch.g);
    assert!(book.redeem(&ch.challenge_token, &cps, time::OffsetDateTime::now_utc()).is_ok());
}
