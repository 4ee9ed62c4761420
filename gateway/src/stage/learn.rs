//! Learn: what the gateway takes from the platform's answers.
//!
//! A 2xx answer to account creation teaches it the new account (recorded against the
//! creating source); to a resource call, what the account now holds; a challenge for
//! an indebted source is rewritten to ask for more checkpoints, and every challenge
//! is remembered with who fetched it. Answers that are not
//! 2xx teach nothing.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use policy::platform::{created_id, parse_challenge, rewrite_challenge, session_jwt};
use policy::pow::IssuedTo;

use super::context::{Capture, RequestCtx};
use crate::enforce::Enforcer;
use crate::tracker::Tracker;

/// Largest response body captured (provisioning answers, created ids).
const MAX_CAPTURED_BODY: usize = 1024 * 1024;

/// Sees the answer's header: counts resource operations that need no body, and
/// prepares a challenge answer for rewriting. `http2`: the client speaks HTTP/2, whose
/// frames carry the end of a body without a length or chunked coding.
pub fn on_header(
    resp: &mut ResponseHeader,
    http2: bool,
    ctx: &mut RequestCtx,
) -> pingora::Result<()> {
    ctx.resp_status = resp.status.as_u16();
    if !resp.status.is_success() {
        ctx.capture = Capture::None;
        ctx.hold = None; // gives the reservation back
        return Ok(());
    }
    // Counted from the status: a create whose answer is too large to read (or never
    // arrives whole) still counts; only its id, for a later delete, needs the body.
    if let Some(hold) = ctx.hold.as_mut() {
        hold.answered_2xx();
    }
    if !matches!(ctx.capture, Capture::CreatedId(_)) {
        if let Some(hold) = ctx.hold.take() {
            hold.settle(None);
        }
    }
    if matches!(ctx.capture, Capture::Challenge { debt } if debt > 0) {
        // The rewritten challenge has another length. HTTP/1.1 gets it chunked (a
        // response with neither length nor chunking would end keep-alive).
        resp.remove_header("content-length");
        if !http2 {
            resp.insert_header("transfer-encoding", "chunked")?;
        }
    }
    Ok(())
}

/// Sees the answer's body: captures what the gateway must learn, rewrites a challenge
/// made harder.
pub fn on_body(enforcer: &Enforcer, body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) {
    if ctx.capture == Capture::None {
        return;
    }
    let rewriting = matches!(ctx.capture, Capture::Challenge { .. });
    // A create or upload-session answer is held until its token is recorded (committed
    // to the embedded store, and in a fleet to the shared store too), so the token never
    // reaches the client before this gateway could forget it or another gateway of the
    // fleet could fail to recognise it.
    let holding = rewriting || matches!(ctx.capture, Capture::Created | Capture::UploadSession);
    if let Some(chunk) = body.as_ref() {
        if ctx.resp_body.len() + chunk.len() <= MAX_CAPTURED_BODY {
            ctx.resp_body.extend_from_slice(chunk);
        } else if !rewriting {
            // Too large to be what we expect: stop capturing, pass it on (with what
            // was held of it).
            ctx.capture = Capture::None;
            let mut held = std::mem::take(&mut ctx.resp_body);
            if holding {
                held.extend_from_slice(chunk);
                *body = Some(Bytes::from(held));
            }
            return;
        }
        if holding {
            *body = None;
        }
    }
    if !end {
        return;
    }
    let captured = std::mem::take(&mut ctx.resp_body);
    let Some(loaded) = enforcer.loaded() else {
        if holding {
            *body = Some(Bytes::from(captured));
        }
        return;
    };
    let tracker = &loaded.tracker;
    let now = enforcer.now();
    match std::mem::take(&mut ctx.capture) {
        Capture::Challenge { debt } => {
            let policy = loaded.engine.current_policy();
            let issued_to = ctx.source.as_ref().map(IssuedTo::of);
            let out = issued_to
                .and_then(|to| book_challenge(&policy, tracker, &captured, debt, to, now))
                .unwrap_or(captured);
            *body = Some(Bytes::from(out));
        }
        Capture::Created => {
            if let Some(source) = ctx.source.take() {
                if let Some(id) = tracker.record_created(&captured, source.clone(), now) {
                    tracing::info!(account = %id, creator = %source.ip, "temporary account created");
                }
            }
            *body = Some(Bytes::from(captured));
        }
        Capture::CreatedId(kind) => {
            if let Some(hold) = ctx.hold.take() {
                hold.settle(created_id(kind, &captured).as_deref());
            }
        }
        Capture::UploadSession => {
            if let (Some(jwt), Some(account)) = (session_jwt(&captured), &ctx.account) {
                let declared = ctx.limits.declared.take().unwrap_or_default();
                tracker.record_upload_session(&jwt, account, declared, now);
            }
            *body = Some(Bytes::from(captured));
        }
        Capture::None => {}
    }
}

/// Remembers a challenge answer in the challenge book (to whom it went, what it asks)
/// and, for a source in debt, rewrites it to ask for more checkpoints. `None`: pass the
/// answer on as it came.
fn book_challenge(
    policy: &policy::Policy,
    tracker: &Tracker,
    answer: &[u8],
    debt: u64,
    issued_to: IssuedTo,
    now: u64,
) -> Option<Vec<u8>> {
    let challenge = parse_challenge(answer).ok()?;
    let k_prime = policy.pow().difficulty_for(debt, challenge.k, challenge.g);
    let rewritten =
        if k_prime > challenge.k { rewrite_challenge(answer, k_prime).ok() } else { None };
    crate::metrics::observe::challenge_issued(rewritten.is_some());
    // Remember what the client was actually sent: k' only if the rewrite succeeded.
    let asked = if rewritten.is_some() { k_prime } else { challenge.k };
    tracker.challenges().remember(
        &challenge.challenge_token,
        challenge.k,
        asked,
        challenge.g,
        issued_to,
        now,
    );
    if rewritten.is_some() {
        tracing::info!(
            debt,
            k = challenge.k,
            k_prime,
            g = challenge.g,
            "proof-of-work made harder for a source in debt"
        );
    }
    rewritten
}
