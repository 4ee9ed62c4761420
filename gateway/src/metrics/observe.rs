//! What the request phases note about one request ([`RequestObs`], carried in the
//! request's context) and the calls that record it, one per phase of
//! [`crate::proxy`]. The last one, [`finished`], counts the request and hands it to
//! [`crate::telemetry`] for its span.

use std::time::{Instant, SystemTime};

use policy::Decision;

use super::families::{status_class, Label};
use crate::stage::context::RequestCtx;
pub use crate::stage::context::RequestObs;
use crate::stage::refusal::{Refusal, Why};
use crate::telemetry::instruments::{attributes, Instruments};

/// Records into the OpenTelemetry instruments too, when telemetry is on.
fn otel(record: impl FnOnce(&Instruments)) {
    if let Some(i) = crate::telemetry::instruments() {
        record(i);
    }
}

fn budget_trip(action: &'static str) {
    let labels: [Label; 1] = [("action", action)];
    super::global().budget_trips.get_or_create(&labels).inc();
    otel(|i| i.budget_trips.add(1, &attributes(&labels)));
}

fn upstream_response(route: &'static str, status: Option<u16>) {
    let labels: [Label; 2] = [("route", route), ("status", status_class(status))];
    super::global().upstream_responses.get_or_create(&labels).inc();
    otel(|i| i.upstream_responses.add(1, &attributes(&labels)));
}

/// `request_filter` began.
pub fn started(ctx: &mut RequestCtx) {
    ctx.obs.started_at = Some(SystemTime::now());
}

/// The checks of `request_filter` ended (`began`: before identify).
pub fn decided(ctx: &mut RequestCtx, began: Instant, verdict: &Result<(), Refusal>) {
    let took = began.elapsed();
    ctx.obs.decision = Some(took);
    let labels: [Label; 1] = [("route", ctx.route_label())];
    super::global().decision_seconds.get_or_create(&labels).observe(took.as_secs_f64());
    otel(|i| i.decision_seconds.record(took.as_secs_f64(), &attributes(&labels)));
    match verdict {
        Err(refusal) => refused(ctx, refusal.why),
        // The budget check asked this source for harder proof-of-work.
        Ok(()) if ctx.pow_debt > 0 => budget_trip("harder_pow"),
        Ok(()) => {}
    }
}

fn refused(ctx: &mut RequestCtx, why: Why) {
    ctx.obs.refused = Some(why);
    if why == Why::Budget {
        budget_trip("refuse");
    }
}

/// The engine's decision: which rule decided (called by the rate-limit check).
pub fn note_rule(ctx: &mut RequestCtx, decision: &Decision) {
    ctx.obs.rule =
        decision.rule.clone().or_else(|| decision.quota.as_ref().map(|q| q.name.clone()));
}

/// The request header is going upstream.
pub fn upstream_sent(ctx: &mut RequestCtx) {
    ctx.obs.upstream_sent = Some(Instant::now());
}

/// The upstream's answer header arrived.
pub fn upstream_answered(ctx: &mut RequestCtx, status: u16) {
    let took = ctx.obs.upstream_sent.map(|t| t.elapsed());
    ctx.obs.upstream = took;
    ctx.obs.upstream_status = Some(status);
    let route = ctx.route_label();
    if let Some(took) = took {
        let labels: [Label; 1] = [("route", route)];
        super::global().upstream_seconds.get_or_create(&labels).observe(took.as_secs_f64());
        otel(|i| i.upstream_seconds.record(took.as_secs_f64(), &attributes(&labels)));
    }
    upstream_response(route, Some(status));
}

/// The request could not be proxied: refused while its body was read (`why`), or
/// `e` failed it. Only failures answered 502 or 504 (the upstream unreachable, timed
/// out or broken) count as upstream errors; a client that went away is not one.
pub fn failed(ctx: &mut RequestCtx, why: Option<Why>, e: &pingora::Error) {
    if let Some(why) = why {
        refused(ctx, why);
        return;
    }
    if !matches!(crate::respond::classify_failure(e).0, 502 | 504) {
        return;
    }
    ctx.obs.upstream_failed = true;
    if let Some(t) = ctx.obs.upstream_sent {
        ctx.obs.upstream = Some(t.elapsed());
    }
    upstream_response(ctx.route_label(), None);
}

/// A challenge answer was passed on; `raised`: with more checkpoints than the platform
/// asked for.
pub fn challenge_issued(raised: bool) {
    let difficulty = if raised { "raised" } else { "platform" };
    let labels: [Label; 1] = [("difficulty", difficulty)];
    super::global().pow_issued.get_or_create(&labels).inc();
    otel(|i| i.pow_issued.add(1, &attributes(&labels)));
}

/// The request is done (`logging`): counts its decision and duration, and records its
/// span when telemetry is on. `status`: what the client was answered (0: nothing).
/// A request that never reached `request_filter` (Pingora gave up on its header) is
/// not counted: the gateway decided nothing about it.
pub fn finished(ctx: &RequestCtx, status: u16) {
    if ctx.started.is_none() {
        return;
    }
    let route = ctx.route_label();
    let outcome = ctx.obs.refused.map_or("allowed", Why::as_str);
    let m = super::global();
    let labels: [Label; 2] = [("route", route), ("outcome", outcome)];
    m.decisions.get_or_create(&labels).inc();
    otel(|i| i.decisions.add(1, &attributes(&labels)));
    let took = ctx.started.map(|s| s.elapsed());
    if let Some(took) = took {
        let labels: [Label; 1] = [("route", route)];
        m.request_seconds.get_or_create(&labels).observe(took.as_secs_f64());
        otel(|i| i.request_seconds.record(took.as_secs_f64(), &attributes(&labels)));
    }
    crate::telemetry::request_done(ctx, status, took);
}
