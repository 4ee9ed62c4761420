//! The first check: the operator's blocks ([`crate::blocks`]).
//!
//! It runs before every other check, so a blocked client is refused before it is
//! framed, rate-limited or counted anywhere else, and the refusal carries the reason
//! the operator gave and when the block lifts (`Retry-After`).

use super::check::Checked;
use super::context::RequestCtx;
use super::refusal::{Refusal, Why};
use crate::blocks::Subject;

/// Refuses a request whose client address, network or fingerprint is blocked.
pub fn blocked(c: &Checked<'_>, _ctx: &mut RequestCtx) -> Result<(), Refusal> {
    let blocks = c.tracker.blocks();
    // The HTTP fingerprint costs a hash: computed only when a fingerprint block exists.
    let http_fp = blocks.wants_fingerprint().then(|| c.id.http_fp());
    let subject = Subject { ip: c.id.client_ip, http_fp, tls_fp: c.id.tls_fp };
    let Some(block) = blocks.check(&subject, c.now) else { return Ok(()) };
    let left = block.expires_at.saturating_sub(c.now).max(1);
    Err(Refusal::retry_after(
        Why::Blocked,
        format!(
            "Blocked by the operator: {}. The block lifts in {left} seconds; if you think \
             it is a mistake, contact the platform's operator.",
            block.reason
        ),
        left,
    ))
}

#[cfg(test)]
#[path = "block_tests.rs"]
mod tests;
