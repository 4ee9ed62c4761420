//! `[pow]` -> [`PowPolicy`], never above wrangler's work cap.

use crate::economics::pow::{PowPolicy, WRANGLER_MAX_WORK};
use crate::lang::raw::economics::RawPow;
use crate::lang::section::{positive, SectionError};

/// Validates `[pow]`.
pub(crate) fn compile_pow(raw: &RawPow) -> Result<PowPolicy, Vec<SectionError>> {
    let d = PowPolicy::default();
    let mut e = Vec::new();
    let per_unit = match &raw.extra_checkpoints_per_unit {
        None => d.extra_checkpoints_per_unit,
        Some(v) => {
            let x = v.get_ref().0;
            if !x.is_finite() || x < 0.0 {
                e.push(SectionError::at(
                    v,
                    format!("extra_checkpoints_per_unit must be a number 0 or more, got {x}"),
                ));
            }
            x
        }
    };
    let max_factor = positive(&raw.max_factor, "max_factor", u64::from(d.max_factor), &mut e);
    let max_work = positive(&raw.max_work, "max_work", d.max_work, &mut e);
    if let Some(v) = &raw.max_work {
        if max_work > WRANGLER_MAX_WORK {
            e.push(SectionError::at(
                v,
                format!("max_work = {max_work} is above wrangler's cap of {WRANGLER_MAX_WORK}; wrangler would refuse the challenge"),
            ));
        }
    }
    let spot_checks = positive(&raw.spot_checks, "spot_checks", u64::from(d.spot_checks), &mut e);
    let ttl = positive(&raw.challenge_ttl_secs, "challenge_ttl_secs", d.challenge_ttl_secs, &mut e);
    let max_challenges =
        positive(&raw.max_challenges, "max_challenges", d.max_challenges as u64, &mut e);
    if !e.is_empty() {
        return Err(e);
    }
    Ok(PowPolicy {
        extra_checkpoints_per_unit: per_unit,
        max_factor: u32::try_from(max_factor).unwrap_or(u32::MAX),
        max_work,
        spot_checks: u32::try_from(spot_checks).unwrap_or(u32::MAX),
        challenge_ttl_secs: ttl,
        max_challenges: usize::try_from(max_challenges).unwrap_or(usize::MAX),
    })
}
