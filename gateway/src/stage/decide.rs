//! Decide: every check a request passes before it is forwarded.
//!
//! Each check has one signature, [`Check`]: it reads the request's [`Checked`] (the
//! identity derived once, the policy in force, the tracker, the time) and either lets
//! the request on, noting in the [`RequestCtx`] what later stages must do, or returns
//! the [`Refusal`] to write. They run in the order of [`CHECKS`]; the first refusal
//! wins, and a refused request charges nothing after it.

use std::net::IpAddr;

use pingora::http::RequestHeader;
use policy::accounts::{SourceKey, SourceKeys};
use policy::ledger::{BudgetAction, BudgetBreach};
use policy::quota::ResourceOp;
use policy::{Outcome, RouteClass};

pub use super::check::{Check, Checked};
use super::context::{BodyPlan, Capture, RequestCtx};
use super::identify::{source_keys, RequestParts};
use super::refusal::{Refusal, Why};
use crate::enforce::Enforcer;

/// The checks, in the order they run.
pub const CHECKS: &[(&str, Check)] = &[
    ("block", super::block::blocked),
    ("framing", super::limits::framing),
    ("limits", rate_limits),
    ("budget", budget),
    ("account-limits", account_limits),
    ("resources", resources),
    ("fair-share", super::fair_share::fair_share),
];

/// Decides a request: `Ok` forwards it, `Err` is the refusal to write. `peer` is
/// `None` for Unix-socket or unknown peers, which are refused: forwarding without a
/// decision would bypass the policy.
pub fn decide(
    enforcer: &Enforcer,
    req: &RequestHeader,
    peer: Option<IpAddr>,
    own_tls_fp: Option<std::sync::Arc<str>>,
    ctx: &mut RequestCtx,
) -> Result<(), Refusal> {
    let Some(loaded) = enforcer.loaded() else { return Ok(()) };
    let Some(peer) = peer else {
        return Err(Refusal::new(
            Why::Denied,
            "The gateway could not tell where this request came from.",
        ));
    };
    let parts = RequestParts::read(req, peer, own_tls_fp, Some(&loaded.tracker));
    let policy = loaded.engine.current_policy();
    let id = parts.identity(&policy);
    ctx.route = Some(id.route);
    ctx.keys.client_ip = Some(id.client_ip);
    ctx.keys.tls_fp = id.tls_fp.map(str::to_string);
    ctx.keys.account_key = parts.account_key.clone();
    let checked = Checked {
        req,
        account: parts.account.as_ref(),
        id: &id,
        policy: &policy,
        engine: &loaded.engine,
        tracker: &loaded.tracker,
        now: enforcer.now(),
    };
    super::verdict::judged(&parts, &id, ctx);
    let outcome =
        CHECKS.iter().try_for_each(|(name, check)| check(&checked, ctx).map_err(|r| (*name, r)));
    if id.http_fp_computed() || crate::access_log::file_enabled() {
        ctx.keys.http_fp = Some(id.http_fp().to_string());
    }
    super::tally::record(
        &loaded.tracker,
        id.client_ip,
        outcome.as_ref().err().map(|(_, r)| r),
        checked.now,
    );
    outcome.map_err(|(name, refusal)| {
        super::verdict::refused(name, &refusal, ctx);
        refusal
    })
}

fn is_provisioning(route: RouteClass) -> bool {
    matches!(route, RouteClass::ProvisionChallenge | RouteClass::ProvisionCreate)
}

/// Rate limits and lists of the policy.
fn rate_limits(c: &Checked<'_>, ctx: &mut RequestCtx) -> Result<(), Refusal> {
    let decision = match ctx.fleet_decision.take() {
        Some(shared) => shared,
        None => c.engine.decide_identified(c.id),
    };
    crate::metrics::observe::note_rule(ctx, &decision);
    if !decision.shadow.is_empty() {
        tracing::info!(
            client = %decision.client_ip,
            route = decision.route.as_str(),
            rules = ?decision.shadow,
            "shadow rules would have refused this request"
        );
    }
    let headers = decision.ratelimit_headers();
    ctx.verdict.rule.clone_from(&decision.rule);
    ctx.verdict.key = decision.key.clone();
    match decision.outcome {
        Outcome::Allow => {
            ctx.response_headers = headers;
            Ok(())
        }
        Outcome::Refuse { status } => {
            let why = match status {
                403 => Why::Denied,
                400 => Why::BadRequest,
                _ => Why::RateLimited,
            };
            tracing::debug!(client = %decision.client_ip, rule = ?decision.rule, status, "refused");
            Err(Refusal { why, message: decision.message, headers })
        }
    }
}

/// The source's cleanup budget, on provisioning calls: refuse, or ask a challenge
/// request for harder proof-of-work.
fn budget(c: &Checked<'_>, ctx: &mut RequestCtx) -> Result<(), Refusal> {
    if !is_provisioning(c.id.route) {
        return Ok(());
    }
    let source = ctx.source.get_or_insert_with(|| source_keys(c.id));
    let budgets = c.policy.budgets();
    if c.id.route == RouteClass::ProvisionChallenge {
        // Every challenge answer is learnt (who fetched it, what it asked), debt or not.
        ctx.capture = Capture::Challenge { debt: 0 };
    }
    let Some(breach) = c.tracker.ledger().over_budget(source, c.now, budgets) else {
        return Ok(());
    };
    match breach.action {
        BudgetAction::Refuse => {
            super::verdict::refused_by_source(ctx, "budget", &breach.key);
            Err(Refusal::retry_after(Why::Budget, breach.message, breach.retry_after_secs))
        }
        BudgetAction::HarderPow => {
            let debt = harder_pow_debt(c, source, &breach);
            ctx.pow_debt = debt;
            if c.id.route == RouteClass::ProvisionChallenge {
                ctx.capture = Capture::Challenge { debt };
            }
            Ok(())
        }
    }
}

/// The debt a `harder_pow` breach makes `source` pay for: its own, and over the
/// platform-wide budget the excess too (the further over, the more, for everyone).
fn harder_pow_debt(c: &Checked<'_>, source: &SourceKeys, breach: &BudgetBreach) -> u64 {
    let mut debt = c.tracker.ledger().source_debt(source, c.now, c.policy.budgets().window_secs);
    if breach.key == SourceKey::Global {
        debt = debt.saturating_add(breach.debt.saturating_sub(breach.budget)).saturating_add(1);
    }
    debt
}

/// The source's live and daily account limits, on account creation.
fn account_limits(c: &Checked<'_>, ctx: &mut RequestCtx) -> Result<(), Refusal> {
    if c.id.route != RouteClass::ProvisionCreate {
        return Ok(());
    }
    let source = ctx.source.get_or_insert_with(|| source_keys(c.id));
    if let Err(refusal) = c.policy.account_limits().check(c.tracker.book(), source, c.now) {
        super::verdict::refused_by_source(ctx, "account-limits", &refusal.key);
        return Err(Refusal::retry_after(
            Why::AccountLimit,
            refusal.message,
            refusal.retry_after_secs,
        ));
    }
    ctx.body_plan = BodyPlan::Rewrite;
    ctx.capture = Capture::Created;
    Ok(())
}

/// Resource quotas and the body size of a known temporary account's calls.
fn resources(c: &Checked<'_>, ctx: &mut RequestCtx) -> Result<(), Refusal> {
    if is_provisioning(c.id.route) {
        return Ok(());
    }
    let Some(info) = c.account else { return Ok(()) };
    ctx.account = Some(info.account_id.clone());
    let req = c.id.request();
    let op = c.policy.classify_resource(req.method, req.path);
    if op.op == ResourceOp::Other {
        return Ok(());
    }
    if op.needs_body() {
        // The manifest is read, checked and reserved once the body is whole (body.rs).
        ctx.body_plan = BodyPlan::Hold;
    } else {
        let hold = super::reserve::reserve(
            super::reserve::Policed { policy: c.policy, tracker: c.tracker },
            &info.account_id,
            &op,
        )
        .map_err(|(r, quota)| {
            if let Some(quota) = quota {
                let rule = format!("quota:{quota}");
                super::verdict::refused_by_key(ctx, rule, "account", info.account_id.clone());
            }
            r
        })?;
        ctx.hold = Some(hold);
    }
    match op.op {
        ResourceOp::Create { kind, name: None } => ctx.capture = Capture::CreatedId(kind),
        ResourceOp::AssetUpload { .. } => ctx.capture = Capture::UploadSession,
        ResourceOp::AssetFiles => super::limits::start_asset_scan(c, info, ctx)?,
        _ => {}
    }
    ctx.op = Some(op);
    Ok(())
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
