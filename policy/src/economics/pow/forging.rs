//! Why forging the extra work cannot pay, as numbers the tests check.
//!
//! A forger asked for `m = k' - k` extra segments of `g` hashes each computes only
//! `m - f` of them, writes `f` made-up checkpoints, and hopes no check lands on a faked
//! segment. The chaining segment `cp[k] -> cp[k+1]` is always checked, so the `f` fakes
//! lie among the other `m - 1`, of which `s = min(spot_checks, m - 1)` are drawn
//! without replacement after the solution arrives:
//!
//! ```text
//! P(pass)                     = C(m - 1 - f, s) / C(m - 1, s)
//! expected work per success   = (m - f) * g / P(pass)          honest: m * g
//! ```
//!
//! Each attempt costs the forger its `m - f` computed segments (plus the platform's
//! `k`, which both pay and which only makes forging worse); a failed attempt burns the
//! token, so the next try needs a new challenge. With at least one spot check and
//! `f >= 1`, `P(pass) <= (m - 1 - f) / (m - 1)`, so the work per success is at least
//! `(m - f) * (m - 1) / (m - 1 - f) * g`, and `(m - f) * (m - 1) >= m * (m - 1 - f)`
//! reduces to `f >= 0`: forging never costs less per success than honest work. The
//! tests evaluate the exact formula for every `m` and `f` the default policy allows.

/// `C(pool - faked, checks) / C(pool, checks)`: the chance that `checks` segments drawn
/// without replacement from `pool` miss all `faked` ones (`checks` is capped at
/// `pool`). 1 with nothing faked; 0 when the checks cannot all fall on honest segments.
pub fn pass_probability(pool: u64, faked: u64, checks: u64) -> f64 {
    let checks = checks.min(pool);
    if faked == 0 {
        return 1.0;
    }
    if faked > pool || pool - faked < checks {
        return 0.0;
    }
    // C(pool-f, s) / C(pool, s) = prod_{i<s} (pool - f - i) / (pool - i)
    (0..checks).map(|i| (pool - faked - i) as f64 / (pool - i) as f64).product()
}

/// Expected hashes a forger spends per accepted solution when it fakes `faked` of the
/// `m` extra segments (never the always-checked chaining segment) against
/// `spot_checks` random checks, with `g` hashes per segment; `None` when it can never
/// pass. Compare with the honest `m * g`.
pub fn forger_work_per_success(m: u64, faked: u64, spot_checks: u64, g: u64) -> Option<f64> {
    if m == 0 || faked >= m {
        // Nothing to fake, or the chaining segment itself would be faked (always caught).
        return if faked == 0 { Some(0.0) } else { None };
    }
    let p = pass_probability(m - 1, faked, spot_checks);
    (p > 0.0).then(|| (m - faked) as f64 * g as f64 / p)
}

/// Expected hashes per accepted solution of a forger who hangs a tail precomputed once
/// onto each challenge: it solves the platform's `k` segments and the chaining segment
/// (always checked), makes up the next checkpoint as the start of its tail, and sends
/// the tail's valid segments for the rest. That is one faked segment among the `m - 1`
/// the spot checks are drawn from, but it saves every segment after it, so the
/// per-segment model of [`forger_work_per_success`] does not cover it. The platform's
/// `k` is counted because every try pays it (faking inside the platform's own segments
/// is for the platform's verification to catch). `None` when it can never pass.
/// Compare with the honest `(k + m) * g`.
pub fn tail_forger_work_per_success(k: u64, m: u64, spot_checks: u64, g: u64) -> Option<f64> {
    if m < 2 {
        // Only the chaining segment is extra, and it is always checked.
        return None;
    }
    let p = pass_probability(m - 1, 1, spot_checks);
    (p > 0.0).then(|| (k + 1) as f64 * g as f64 / p)
}

/// The fewest spot checks for which a tail forger ([`tail_forger_work_per_success`])
/// pays at least the honest `(k + m) * g` per success: `ceil((m - 1)^2 / (k + m))`, at
/// most `m - 1` (every extra segment checked).
pub fn spot_checks_against_tails(k: u64, m: u64) -> u64 {
    if m < 2 {
        return 0;
    }
    let pool = m - 1;
    (pool * pool).div_ceil(k + m).min(pool)
}
