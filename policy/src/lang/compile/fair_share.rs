//! `[fair_share]` -> [`FairShareSpec`]: the shared global ceiling.

use super::rules::items;
use super::settings::{int_in, unknown_route};
use super::Ctx;
use crate::lang::fair_share::FairShareSpec;
use crate::lang::rate::Rate;
use crate::lang::raw::RawFairShare;
use crate::lang::route::RouteClass;
use serde_spanned::Spanned;

/// Default network size of an IPv4 client: a /16 is an ISP region or a cloud block.
pub(crate) const DEFAULT_IPV4: u8 = 16;
/// Default network size of an IPv6 client: a /32 is one ISP's RIR allocation.
pub(crate) const DEFAULT_IPV6: u8 = 32;
/// Default fraction of the ceiling at which sharing starts.
pub(crate) const DEFAULT_SHARE_ABOVE: f64 = 0.5;
/// Default share multiplier of a source with a record of claimed accounts.
pub(crate) const DEFAULT_CLAIMED_WEIGHT: u32 = 4;
/// Default cap on tracked networks (about 80 bytes each: ~8 MB).
pub(crate) const DEFAULT_MAX_NETWORKS: usize = 100_000;

/// Validates `[fair_share]`; `None` when absent (or invalid, with the errors noted).
pub(super) fn build_fair_share(
    cx: &mut Ctx<'_>,
    raw: Option<Spanned<RawFairShare>>,
) -> Option<FairShareSpec> {
    let raw = raw?.into_inner();
    let before = cx.errs.len();
    let mut routes = Vec::new();
    for (name, span) in items(raw.route) {
        match RouteClass::parse(&name) {
            Some(c) => routes.push(c),
            None => cx.err(span, unknown_route(&name)),
        }
    }
    if routes.is_empty() {
        routes.push(RouteClass::ProvisionCreate);
    }
    let ceiling = Rate::parse(raw.ceiling.get_ref()).map_err(|m| cx.err(raw.ceiling.span(), m));
    let bits = |cx: &mut Ctx<'_>, v: &Option<Spanned<i64>>, max: i64, what: &str, d: u8| {
        v.as_ref().map_or(Some(d), |v| int_in(cx, v, 1, max, what).map(|n| n as u8))
    };
    let ipv4 = bits(cx, &raw.ipv4, 32, "fair_share ipv4 prefix length", DEFAULT_IPV4);
    let ipv6 = bits(cx, &raw.ipv6, 128, "fair_share ipv6 prefix length", DEFAULT_IPV6);
    let share_above = match &raw.share_above {
        None => DEFAULT_SHARE_ABOVE,
        Some(v) => {
            let x = v.get_ref().0;
            if !(0.0..=1.0).contains(&x) {
                cx.err(v.span(), format!("share_above must be a fraction from 0 to 1, got {x}"));
            }
            x
        }
    };
    let claimed_weight = raw
        .claimed_weight
        .as_ref()
        .map_or(Some(i64::from(DEFAULT_CLAIMED_WEIGHT)), |v| {
            int_in(cx, v, 1, 1000, "claimed_weight")
        })
        .map(|n| n as u32);
    let max_networks = raw
        .max_networks
        .as_ref()
        .map_or(Some(DEFAULT_MAX_NETWORKS as i64), |v| int_in(cx, v, 1, 10_000_000, "max_networks"))
        .map(|n| n as usize);
    if cx.errs.len() != before {
        return None;
    }
    Some(FairShareSpec {
        routes,
        ceiling: ceiling.ok()?,
        ipv4: ipv4?,
        ipv6: ipv6?,
        share_above,
        claimed_weight: claimed_weight?,
        max_networks: max_networks?,
        message: raw.message.map(Spanned::into_inner),
        advice: raw.advice.map(Spanned::into_inner),
    })
}
