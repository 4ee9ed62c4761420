//! Body: request bodies a check must see whole.
//!
//! Asset manifests are held until complete, checked and reserved against the account's
//! quotas, and forwarded unchanged. Every chunk first passes [`super::limits::on_chunk`]
//! (body size, held-bytes budget, asset files' real sizes). Account creation bodies are held so the gateway can verify the
//! extra proof-of-work checkpoints it asked an indebted source for and remove them, so
//! the platform sees the solution to the challenge it issued. A refusal found here is
//! recorded in [`RequestCtx::refusal`] and the returned error aborts the upstream
//! request; `fail_to_proxy` writes the refusal.

use bytes::Bytes;
use pingora::http::RequestHeader;

use super::context::{BodyPlan, Capture, RequestCtx};
use super::refusal::{Refusal, Why};
use super::reserve::QuotaHold;
use crate::enforce::Enforcer;
use policy::pow::IssuedTo;

/// Largest request body held for inspection (asset manifests, PoW solutions).
pub const MAX_HELD_BODY: usize = 4 * 1024 * 1024;

/// Runs on each chunk of the request body. An error aborts the request; the refusal
/// is in `ctx.refusal`.
pub fn on_chunk(
    enforcer: &Enforcer,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
    ctx: &mut RequestCtx,
) -> pingora::Result<()> {
    if let Err(refusal) = super::limits::on_chunk(enforcer, body.as_ref(), end_of_stream, ctx) {
        return abort(ctx, refusal);
    }
    if ctx.body_plan == BodyPlan::Stream {
        return Ok(());
    }
    // Held chunks are replaced by an empty chunk, not `None`: Pingora reads `None` as
    // the end of the body and would finish the upstream request early.
    if let Some(chunk) = body.replace(Bytes::new()) {
        if ctx.req_body.len() + chunk.len() > MAX_HELD_BODY {
            let mib = MAX_HELD_BODY / (1024 * 1024);
            let message = format!(
                "The request body is larger than the {mib} MiB the gateway inspects for this call."
            );
            return abort(ctx, Refusal::new(Why::Quota, message));
        }
        ctx.req_body.extend_from_slice(&chunk);
    }
    if !end_of_stream {
        return Ok(());
    }
    let held = std::mem::take(&mut ctx.req_body);
    let Some(loaded) = enforcer.loaded() else {
        *body = Some(Bytes::from(held));
        return Ok(());
    };
    let policy = loaded.engine.current_policy();
    let tracker = &loaded.tracker;
    match ctx.body_plan {
        BodyPlan::Rewrite => {
            let mut rng = rand::thread_rng();
            let redeemer = policy::platform::Redeemer {
                issued_to: ctx.source.as_ref().map_or_else(unknown_source, IssuedTo::of),
                debt: ctx.pow_debt,
            };
            match policy::platform::trim_create_body(
                &held,
                tracker.challenges(),
                enforcer.now(),
                policy.pow(),
                redeemer,
                &mut rng,
            ) {
                Ok(Some((trimmed, hashes))) => {
                    ctx.pow_hashes = hashes;
                    tracker.note_pow_verify(hashes);
                    tracing::debug!(hashes, "verified the extra proof-of-work segments");
                    *body = Some(Bytes::from(trimmed));
                }
                Ok(None) => *body = Some(Bytes::from(held)),
                Err(e) => {
                    let message = format!(
                        "The proof-of-work solution failed the gateway's check: {e}. Run the deploy again to get a new challenge."
                    );
                    return abort(ctx, Refusal::new(Why::ProofOfWork, message));
                }
            }
        }
        BodyPlan::Hold => {
            if let (Some(op), Some(account)) = (ctx.op.as_mut(), ctx.account.clone()) {
                let read = policy::platform::parse_asset_manifest(&held)
                    .and_then(|m| policy::platform::manifest_sizes(&held).map(|s| (m, s)));
                match read {
                    Ok((manifest, sizes)) => {
                        op.attach_manifest(manifest);
                        ctx.limits.declared = Some(std::sync::Arc::new(sizes));
                    }
                    Err(e) => {
                        let message = format!("The asset manifest could not be read: {}", e.0);
                        return abort(ctx, Refusal::new(Why::Quota, message));
                    }
                }
                match tracker.reserve_quota(&policy, &account, op) {
                    Ok(r) => {
                        let hold = QuotaHold::new(loaded.tracker.clone(), &account, op.clone(), r);
                        ctx.hold = Some(hold);
                    }
                    Err(refusal) => return abort(ctx, Refusal::new(Why::Quota, refusal.message)),
                }
            }
            *body = Some(Bytes::from(held));
        }
        BodyPlan::Stream => {}
    }
    Ok(())
}

/// Adjusts the request sent upstream: a rewritten body has a new length, and an answer
/// the gateway must read is asked for uncompressed.
pub fn prepare_upstream(req: &mut RequestHeader, ctx: &RequestCtx) -> pingora::Result<()> {
    if ctx.body_plan == BodyPlan::Rewrite {
        req.remove_header("content-length");
        req.insert_header("transfer-encoding", "chunked")?;
    }
    if ctx.capture != Capture::None {
        req.remove_header("accept-encoding");
    }
    Ok(())
}

/// The redeemer of a create whose source keys were not derived (no policy decided
/// it): matches no fetcher, so the stricter difficulty applies.
fn unknown_source() -> IssuedTo {
    IssuedTo::of(&policy::accounts::SourceKeys::new(
        std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        None,
        None,
    ))
}

fn abort(ctx: &mut RequestCtx, refusal: Refusal) -> pingora::Result<()> {
    let status = refusal.status();
    ctx.refusal = Some(refusal);
    Err(pingora::Error::explain(
        pingora::ErrorType::HTTPStatus(status),
        "refused after reading the request body",
    ))
}
