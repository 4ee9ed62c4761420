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
