//! Fleet limits: the policy's rate limits decided in the fleet's Redis, before the
//! synchronous checks of [`super::decide`].
//!
//! Only when the gateway has a shared store (`[store] redis`) and the request meets a
//! limit: the engine plans the decision ([`policy::Engine::plan`]), the store gives its
//! verdicts ([`crate::fleet::limits::FleetLimits::verdicts`]) and the engine turns them
//! into the [`policy::Decision`] that the `limits` check then applies instead of
//! deciding locally. A request no limit covers never waits for the store. When the
//! store does not answer (within the response timeout), a rule with `on_store_error =
//! "closed"` refuses with 503; otherwise the `limits` check decides locally, as a
//! single gateway does.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pingora::http::RequestHeader;

use super::context::RequestCtx;
use super::identify::RequestParts;
use super::refusal::{Refusal, Why};
use crate::enforce::Enforcer;

/// Seconds a client refused for want of the store is asked to wait.
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

/// Decides the request's rate limits in the shared store, noting the decision in
/// `ctx.fleet_decision`; `Err` is the 503 of a `closed` rule when the store is down.
pub async fn check(
    enforcer: &Enforcer,
    req: &RequestHeader,
    peer: Option<IpAddr>,
    own_tls_fp: Option<Arc<str>>,
    ctx: &mut RequestCtx,
) -> Result<(), Refusal> {
    let (Some(fleet), Some(loaded), Some(peer)) =
        (enforcer.fleet_limits(), enforcer.loaded(), peer)
    else {
        return Ok(());
    };
    let plan = {
        let parts = RequestParts::read(req, peer, own_tls_fp, Some(&loaded.tracker));
        let policy = loaded.engine.current_policy();
        let id = parts.identity(&policy);
        loaded.engine.plan(&id)
    };
    if !plan.needs_store() {
        return Ok(());
    }
    match fleet.verdicts(plan.limits(), plan.charges()).await {
        Ok(verdicts) => {
            ctx.fleet_decision = Some(loaded.engine.finish(plan, &verdicts));
            Ok(())
        }
        Err(error) => {
            let closed = plan.closed_rules();
            let Some(first) = closed.first() else {
                fleet.stats().local_fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "shared rate-limit store unavailable; local limits decide");
                return Ok(());
            };
            fleet.stats().closed_refusals.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, rule = first, "shared rate-limit store unavailable; refused");
            Err(Refusal::retry_after(
                Why::StoreUnavailable,
                format!(
                    "The gateway's shared rate-limit store is unreachable, so rate limit \"{first}\" cannot be checked. Retry in {STORE_RETRY_AFTER_SECS} seconds."
                ),
                STORE_RETRY_AFTER_SECS,
            ))
        }
    }
}
