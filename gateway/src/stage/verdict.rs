//! What the checks decided about one request, kept for the access log and written to
//! the audit log when it is a refusal.
//!
//! [`judged`] notes, when the request is decided, what `gateway replay` needs to
//! judge it again under another policy: the time (microseconds) and order of the
//! decision, the normalised path, the header names (never their values) and the
//! account. [`refused`] notes which check refused, by what rule and key, and writes
//! the audit line. Nothing here is a secret: keys are addresses, prefixes,
//! fingerprints, account ids or keyed hashes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use policy::Identity;

use super::context::RequestCtx;
use super::identify::RequestParts;
use super::refusal::{Refusal, Why};
use crate::access_log::loggable_path;

/// The order requests are judged in by this process.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Notes when and how the request was judged (before the checks run).
pub fn judged(parts: &RequestParts<'_>, id: &Identity<'_>, ctx: &mut RequestCtx) {
    let v = &mut ctx.verdict;
    v.seq = SEQ.fetch_add(1, Ordering::Relaxed);
    v.at_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    v.noncanonical = id.path_problem.is_some();
    v.account = parts.account.as_ref().map(|a| a.account_id.clone());
    if crate::access_log::file_enabled() {
        let normalised = policy::normalised_path(parts.path);
        v.path = loggable_path(&normalised, Some(id.route)).into_owned();
        v.header_names = parts.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    }
}

/// Notes a refusal by `check` and writes its audit line. The key is what the check
/// noted ([`Verdict::key`]), else the account for a quota, else the client address.
pub fn refused(check: &'static str, refusal: &Refusal, ctx: &mut RequestCtx) {
    let client = ctx.keys.client_ip;
    let v = &mut ctx.verdict;
    v.refused_by = Some(check);
    v.why = Some(refusal.why);
    if v.key.is_none() {
        v.key = match (&ctx.account, client) {
            (Some(account), _) if refusal.why == Why::Quota => {
                Some(("account".into(), account.clone()))
            }
            (_, Some(ip)) => Some(("ip".into(), ip.to_string())),
            (_, None) => None,
        };
    }
    // The engine's rule names a refusal only when the engine refused (an allow rule
    // that let the request on to a later check did not refuse it).
    let engine_rule = if check == "limits" { v.rule.clone() } else { None };
    let rule = v.refused_rule.clone().or(engine_rule);
    let (kind, value) = v.key.as_ref().map_or(("", ""), |(k, v)| (k.as_str(), bare(k, v)));
    crate::audit::log().refusal(&crate::audit::RefusalLine {
        rule: rule.as_deref().unwrap_or(check),
        key_kind: kind,
        key_value: value,
        reason: refusal.why.as_str(),
        message: &refusal.message,
        route: ctx.route.map(|r| r.as_str()),
        status: refusal.status(),
        client,
    });
}

/// Notes what a check knows better than the default: the rule and key it refused by.
pub fn refused_by_key(ctx: &mut RequestCtx, rule: impl Into<String>, kind: &str, value: String) {
    ctx.verdict.refused_rule = Some(rule.into());
    ctx.verdict.key = Some((kind.to_string(), value));
}

/// [`refused_by_key`] for a ledger or account-book source key (`ipv4/24:…`).
pub fn refused_by_source(ctx: &mut RequestCtx, rule: &str, key: &policy::accounts::SourceKey) {
    let text = key.to_string();
    let (kind, value) = crate::audit::split_key(&text);
    refused_by_key(ctx, rule, kind, value);
}

/// A one-part bucket without its part name (`ip=192.0.2.1` is `192.0.2.1`, as budget
/// and account-limit keys are written); a combined key's bucket stays whole
/// (`ipv4=192.0.2.0/24|http_fp=hf1_…`), its parts named.
fn bare<'a>(kind: &str, bucket: &'a str) -> &'a str {
    match bucket.split_once('=') {
        Some((_, value)) if !kind.contains('+') => value,
        _ => bucket,
    }
}

#[cfg(test)]
mod tests {
    use super::bare;

    #[test]
    fn one_part_buckets_lose_their_name_and_combined_ones_keep_theirs() {
        assert_eq!(bare("ip", "ip=192.0.2.1"), "192.0.2.1");
        assert_eq!(bare("ipv4/24", "ipv4=192.0.2.0/24"), "192.0.2.0/24");
        assert_eq!(bare("account", "account=-ip:192.0.2.1"), "-ip:192.0.2.1");
        assert_eq!(
            bare("ipv4/24+http_fp", "ipv4=192.0.2.0/24|http_fp=hf1_x"),
            "ipv4=192.0.2.0/24|http_fp=hf1_x"
        );
        assert_eq!(bare("global", "global"), "global");
    }
}
