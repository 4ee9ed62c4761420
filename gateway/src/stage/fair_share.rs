//! The `[fair_share]` check: the global creation ceiling shared among networks.
//!
//! It runs after every other check, so only requests that will be forwarded use up
//! the shared ceiling. A source whose ledger record over the budget window is net
//! claims (its own address, or its `[prefixes]` network: IPv4 /24 or IPv6 /64 by
//! default) asks with a larger share; the wider networks and the fingerprints are not
//! consulted, because every honest user of one wrangler build shares a fingerprint and
//! a botnet member may share a /16 with a claimer.

use policy::accounts::{SourceKey, SourceKind};
use policy::FairVerdict;

use super::check::Checked;
use super::context::RequestCtx;
use super::identify::source_keys;
use super::refusal::{Refusal, Why};

/// Refuses a request the fair-share ceiling does not admit; counts the ones it does.
pub fn fair_share(c: &Checked<'_>, ctx: &mut RequestCtx) -> Result<(), Refusal> {
    if !c.policy.fair_share_covers(c.id.route) {
        return Ok(());
    }
    let source = ctx.source.get_or_insert_with(|| source_keys(c.id));
    let window = c.policy.budgets().window_secs;
    let ledger = c.tracker.ledger();
    let own: [Option<SourceKey>; 3] = [
        Some(SourceKey::Ip(source.ip)),
        source.key_of(SourceKind::Ipv4_24),
        source.key_of(SourceKind::Ipv6_64),
    ];
    let claimed = own.iter().flatten().any(|k| ledger.net_units(k, c.now, window) < 0);
    ctx.verdict.claimer = Some(claimed);
    match c.engine.fair_share(c.id, claimed) {
        FairVerdict::NotApplicable | FairVerdict::Admit => Ok(()),
        FairVerdict::Refuse { retry_after_secs, message } => {
            tracing::debug!(client = %c.id.client_ip, claimed, "refused by the fair-share ceiling");
            Err(Refusal::retry_after(Why::RateLimited, message, retry_after_secs))
        }
    }
}
