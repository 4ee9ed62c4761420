//! `[[rule]]`: matchers and limits, checked against the lists and routes compiled first.

use super::settings::{int_in, unknown_route};
use super::Ctx;
use crate::lang::error::{did_you_mean, one_of};
use crate::lang::key::{KeySpec, Missing};
use crate::lang::model::{Action, CidrList, Limit, Matcher, OnStoreError, Rule};
use crate::lang::rate::Rate;
use crate::lang::raw::{OneOrMany, RawLimit, RawMatch, RawRule};
use crate::lang::route::RouteClass;
use serde_spanned::Spanned;
use std::num::NonZeroU32;
use std::ops::Range;

pub(super) fn build_rule(
    cx: &mut Ctx<'_>,
    r: RawRule,
    span: Range<usize>,
    lists: &[CidrList],
    store_default: OnStoreError,
) -> Option<Rule> {
    let name = r.name.get_ref().clone();
    if name.trim().is_empty() {
        cx.err(r.name.span(), "rule name must not be empty");
    }
    let action = match r.action.get_ref().as_str() {
        "allow" => Some(Action::Allow),
        "deny" => Some(Action::Deny),
        "limit" => Some(Action::Limit),
        "shadow" => Some(Action::Shadow),
        other => {
            cx.err(
                r.action.span(),
                format!(
                    "unknown action \"{other}\", expected one of {}{}",
                    one_of(Action::NAMES),
                    did_you_mean(other, Action::NAMES)
                ),
            );
            None
        }
    };
    let matcher = r.matcher.map(|m| build_match(cx, m, lists)).unwrap_or_default();
    let mut limits = Vec::new();
    let limits_span = r.limits.as_ref().map(|l| l.span());
    let raw_limits = r.limits.map(Spanned::into_inner).unwrap_or_default();
    let written = raw_limits.len();
    for l in raw_limits {
        if let Some(l) = build_limit(cx, l.into_inner()) {
            limits.push(l);
        }
    }
    match (action, limits_span) {
        (Some(Action::Limit), None) => cx.err(span.clone(), format!("rule \"{name}\" has action = \"limit\" but no limits = [...]")),
        (Some(Action::Limit), Some(s)) if written == 0 => {
            cx.err(s, format!("rule \"{name}\" has action = \"limit\" but limits is empty"))
        }
        (Some(a @ (Action::Allow | Action::Deny)), Some(s)) => {
            cx.err(s, format!("rule \"{name}\": limits only apply to action = \"limit\" or \"shadow\", not \"{}\"", a.as_str()))
        }
        _ => {}
    }
    let on_store_error = super::store::rule_on_store_error(
        cx,
        r.on_store_error.as_ref(),
        action,
        &name,
        store_default,
    );
    Some(Rule {
        name,
        matcher,
        action: action?,
        limits,
        message: r.message.map(Spanned::into_inner),
        advice: r.advice.map(Spanned::into_inner),
        on_store_error,
    })
}

fn build_match(cx: &mut Ctx<'_>, m: RawMatch, lists: &[CidrList]) -> Matcher {
    let mut out = Matcher::default();
    let names: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
    for (field, target) in [(m.list, &mut out.lists), (m.not_list, &mut out.not_lists)] {
        for (name, span) in items(field) {
            match lists.iter().position(|l| l.name == name) {
                Some(i) => target.push(i),
                None if names.is_empty() => {
                    cx.err(span, format!("unknown list \"{name}\": no [lists.*] are defined"))
                }
                None => cx.err(
                    span,
                    format!(
                        "unknown list \"{name}\", defined lists are {}{}",
                        one_of(names.iter().copied()),
                        did_you_mean(&name, names.iter().copied())
                    ),
                ),
            }
        }
    }
    for (name, span) in items(m.route) {
        match RouteClass::parse(&name) {
            Some(c) => out.routes.push(c),
            None => cx.err(span, unknown_route(&name)),
        }
    }
    for (method, span) in items(m.method) {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            cx.err(span, format!("bad method \"{method}\": use letters such as GET or POST"));
        } else {
            out.methods.push(method.to_ascii_uppercase());
        }
    }
    for (field, target) in [(m.header, &mut out.headers), (m.no_header, &mut out.no_headers)] {
        for (h, _) in items(field) {
            target.push(h.to_ascii_lowercase());
        }
    }
    for (value, span) in items(m.account) {
        match value.as_str() {
            "known" => out.accounts.push(true),
            "unknown" => out.accounts.push(false),
            _ => cx.err(
                span,
                format!(
                    "bad account condition \"{value}\": use \"known\" (a temporary account the gateway made) or \"unknown\" (no token, or a token of no account it knows){}",
                    did_you_mean(&value, ["known", "unknown"])
                ),
            ),
        }
    }
    out
}

pub(super) fn items(field: Option<Spanned<OneOrMany>>) -> Vec<(String, Range<usize>)> {
    match field {
        None => Vec::new(),
        Some(s) => {
            let span = s.span();
            s.into_inner().0.into_iter().map(|v| (v, span.clone())).collect()
        }
    }
}

fn build_limit(cx: &mut Ctx<'_>, l: RawLimit) -> Option<Limit> {
    let key = KeySpec::parse(l.key.get_ref()).map_err(|m| cx.err(l.key.span(), m)).ok();
    let rate = Rate::parse(l.rate.get_ref()).map_err(|m| cx.err(l.rate.span(), m)).ok();
    let burst = match &l.burst {
        None => rate.map(|r| r.count),
        Some(b) if *b.get_ref() == 0 => {
            cx.err(
                b.span(),
                "burst must be at least 1 (a zero burst admits nothing; use action = \"deny\")",
            );
            None
        }
        Some(b) => {
            int_in(cx, b, 1, u32::MAX as i64, "burst").and_then(|n| NonZeroU32::new(n as u32))
        }
    };
    let cost = match &l.cost {
        None => NonZeroU32::new(1),
        Some(c) => {
            int_in(cx, c, 1, u32::MAX as i64, "cost").and_then(|n| NonZeroU32::new(n as u32))
        }
    };
    if let (Some(b), Some(c), Some(cs)) = (burst, cost, &l.cost) {
        if c > b {
            cx.err(cs.span(), format!("cost {c} is larger than burst {b}: this limit could never admit such a request"));
        }
    }
    let missing = match &l.missing {
        None => Some(Missing::Ip),
        Some(m) => Missing::parse(m.get_ref()).or_else(|| {
            cx.err(
                m.span(),
                format!(
                    "unknown missing-key handling \"{}\", expected one of {}{}",
                    m.get_ref(),
                    one_of(Missing::NAMES),
                    did_you_mean(m.get_ref(), Missing::NAMES)
                ),
            );
            None
        }),
    };
    let (key, rate, burst, cost, missing) = (key?, rate?, burst?, cost?, missing?);
    let Some(quota) = rate.quota(burst) else {
        cx.err(l.rate.span(), format!("bad rate \"{}\": too fast to measure", l.rate.get_ref()));
        return None;
    };
    if cost > burst {
        return None;
    }
    Some(Limit { key, rate, burst, cost, missing, quota })
}
