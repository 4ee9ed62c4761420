//! Limits on request bodies, whatever their framing.
//!
//! - [`framing`] (a check of `decide`, first of all): a `Content-Length` that is
//!   repeated, a list (`10, 10`) or not a number, one beside a `Transfer-Encoding`, and a
//!   `Transfer-Encoding` other than a single `chunked` are refused with 400 before
//!   anything is forwarded (two framings of one body are how requests are smuggled), and a declared
//!   length over `max_body_bytes` with 403 at once.
//! - [`on_chunk`] (every chunk of every request body): the bytes are counted as they
//!   stream, so a chunked body is held to `max_body_bytes` too; bytes the gateway holds
//!   are reserved in the gateway-wide budget ([`crate::held`]); and the files of an
//!   asset upload are measured ([`policy::platform::AssetUploadScanner`]) against the
//!   per-file limit, the size their session's manifest declared and the account's file
//!   quota.

use bytes::Bytes;
use policy::accounts::AccountInfo;
use policy::platform::{multipart_boundary, AssetUploadScanner};
use policy::quota::reserve::file_too_large;

use super::check::Checked;
use super::context::{AssetScan, BodyPlan, RequestCtx};
use super::identify::bearer_token;
use super::refusal::{Refusal, Why};
use crate::enforce::Enforcer;

/// Seconds a client refused for want of room to hold its body is asked to wait.
pub const HELD_RETRY_AFTER_SECS: u64 = 5;

fn bad_request(message: &str) -> Refusal {
    Refusal::new(Why::BadRequest, message)
}

/// Refuses ambiguous framing and a declared length over the limit; notes the limit for
/// [`on_chunk`].
pub fn framing(c: &Checked<'_>, ctx: &mut RequestCtx) -> Result<(), Refusal> {
    let mut codings = c.req.headers.get_all("transfer-encoding").iter();
    if let Some(coding) = codings.next() {
        // Only a single `chunked` is unambiguous: with a Content-Length beside it, or
        // another coding, the gateway and the deploy API may each find a different
        // end of the body, and what one reads as the next request the other reads as
        // this one's body.
        if c.req.headers.contains_key("content-length") {
            return Err(bad_request(
                "The request has both Transfer-Encoding and Content-Length; send one of them.",
            ));
        }
        let chunked = coding.to_str().is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        if !chunked || codings.next().is_some() {
            return Err(bad_request(
                "The request's Transfer-Encoding is not a single \"chunked\"; send the body chunked or with a Content-Length.",
            ));
        }
    }
    let mut values = c.req.headers.get_all("content-length").iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(bad_request(
            "The request has more than one Content-Length header; send exactly one.",
        ));
    }
    let limit = c.policy.quotas().max_body_bytes;
    ctx.limits.max_body = Some(limit);
    let Some(value) = first else { return Ok(()) };
    let declared = value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            bad_request(
                "The request's Content-Length is not a single number; send exactly one length.",
            )
        })?;
    c.policy.quotas().check_body_size(declared).map_err(|r| Refusal::new(Why::Quota, r.message))
}

/// Prepares the measurement of an asset upload authorized by an upload session's
/// token; refused when the body is not multipart (its files could not be measured).
pub fn start_asset_scan(
    c: &Checked<'_>,
    info: &AccountInfo,
    ctx: &mut RequestCtx,
) -> Result<(), Refusal> {
    let declared = bearer_token(c.req)
        .map(|t| c.tracker.hash_token(t))
        .and_then(|h| c.tracker.uploads().get(&h))
        .filter(|s| s.account_id == info.account_id)
        .map(|s| s.declared)
        .unwrap_or_default();
    let content_type =
        c.req.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multipart_boundary(content_type).ok_or_else(|| {
        bad_request(
            "An asset upload must be multipart/form-data with a boundary; send the files as parts.",
        )
    })?;
    let base64 = c.req.uri.query().is_some_and(|q| q.split('&').any(|p| p == "base64=true"));
    ctx.limits.scan =
        Some(AssetScan { scanner: AssetUploadScanner::new(&boundary, base64), declared });
    Ok(())
}

/// Counts, holds and measures one chunk of a request body.
pub fn on_chunk(
    enforcer: &Enforcer,
    chunk: Option<&Bytes>,
    end_of_stream: bool,
    ctx: &mut RequestCtx,
) -> Result<(), Refusal> {
    let len = chunk.map_or(0, |c| c.len() as u64);
    ctx.limits.seen = ctx.limits.seen.saturating_add(len);
    if let Some(limit) = ctx.limits.max_body {
        if ctx.limits.seen > limit {
            return Err(Refusal::new(
                Why::Quota,
                format!(
                    "Quota \"body_bytes\" reached: a request may be at most {limit} bytes (this one is longer). \
                     Make the upload smaller or claim the account to lift temporary-account limits."
                ),
            ));
        }
    }
    let Some(tracker) = enforcer.tracker() else { return Ok(()) };
    if ctx.body_plan != BodyPlan::Stream
        && len > 0
        && !tracker.held().hold(&mut ctx.limits.held, len)
    {
        return Err(Refusal::retry_after(
            Why::Busy,
            format!(
                "The gateway is holding as many request bodies as it may right now. Retry in {HELD_RETRY_AFTER_SECS} seconds."
            ),
            HELD_RETRY_AFTER_SECS,
        ));
    }
    if ctx.limits.scan.is_some() {
        scan_assets(enforcer, chunk, end_of_stream, ctx)?;
    }
    Ok(())
}

fn scan_assets(
    enforcer: &Enforcer,
    chunk: Option<&Bytes>,
    end_of_stream: bool,
    ctx: &mut RequestCtx,
) -> Result<(), Refusal> {
    let (Some(loaded), Some(scan), Some(hold)) =
        (enforcer.loaded(), ctx.limits.scan.as_mut(), ctx.hold.as_mut())
    else {
        return Ok(());
    };
    let policy = loaded.engine.current_policy();
    let spec = policy.quotas();
    let malformed = |e: policy::platform::UploadError| bad_request(&format!("{e}."));
    let files = match chunk {
        Some(c) => scan.scanner.feed(c).map_err(malformed)?,
        None => Vec::new(),
    };
    let over_declared = |name: &str, bytes: u64| {
        let declared = scan.declared.get(name).copied()?;
        (bytes > declared).then(|| {
            Refusal::new(
                Why::Quota,
                format!(
                    "Static-asset file {name} is larger than the {declared} bytes its upload session declared. \
                     Start a new upload session with the file's real size."
                ),
            )
        })
    };
    for f in &files {
        if let Some(r) = over_declared(&f.name, f.bytes) {
            return Err(r);
        }
        hold.reserve_file(&policy, &f.name, f.bytes)?;
    }
    if let Some((name, bytes)) = scan.scanner.current() {
        if bytes > spec.max_asset_file_bytes {
            return Err(Refusal::new(Why::Quota, file_too_large(spec, bytes).message));
        }
        if let Some(r) = over_declared(name, bytes) {
            return Err(r);
        }
    }
    if end_of_stream {
        scan.scanner.finish().map_err(malformed)?;
    }
    Ok(())
}
