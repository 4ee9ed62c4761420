//! The access log file (`[access_log] file`): one JSON line per judged request, with
//! what `gateway replay` needs to judge it again under another policy.
//!
//! Fields: `ts` (when it was judged, RFC 3339 with microseconds) and `seq` (the
//! order this process judged requests in); `client` (the address as the gateway
//! derived it behind trusted proxies), `route`, `method`, `path` (normalised, claim
//! secrets redacted), `noncanonical`, `headers` (names only, never values); `http_fp`,
//! `tls_fp`; `account_key` (the account id or the `tok_` keyed hash of an unknown
//! token, never the token) and `account` (a known account's id); the outcome:
//! `decision` (`allow` or `refuse`), `status`, `rule` (the policy rule that decided,
//! if any), `refused_by` (the check: `framing`, `limits`, `budget`,
//! `account-limits`, `resources`, `fair-share`, `body`), `why`; `claimer` (when the
//! fair-share check ran: whether the source's record is net claims, which enlarges
//! its share); and `elapsed_us`.

use std::sync::OnceLock;

use pingora::proxy::Session;
use pingora::Error;
use serde_json::json;

use crate::audit::{rfc3339_micros, LineSink};
use crate::stage::context::RequestCtx;

static FILE: OnceLock<LineSink> = OnceLock::new();

/// Makes `sink` the access log file of this process; `false` if one was set already.
pub fn install_file(sink: LineSink) -> bool {
    FILE.set(sink).is_ok()
}

/// Whether an access log file is written (the request stages then record the
/// fields only it needs).
pub fn file_enabled() -> bool {
    FILE.get().is_some()
}

/// The access log file's sink, for flushing at shutdown.
pub fn file_sink() -> Option<&'static LineSink> {
    FILE.get()
}

/// Writes the line of a finished request, if it was judged and a file is configured.
pub(super) fn write(session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
    let Some(sink) = FILE.get() else { return };
    let v = &ctx.verdict;
    let Some(client) = ctx.keys.client_ip else { return };
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let line = json!({
        "ts": rfc3339_micros(i128::from(v.at_us)),
        "seq": v.seq,
        "client": client.to_string(),
        "route": ctx.route.map(|r| r.as_str()),
        "method": session.req_header().method.as_str(),
        "path": v.path,
        "noncanonical": v.noncanonical,
        "headers": v.header_names,
        "http_fp": ctx.keys.http_fp,
        "tls_fp": ctx.keys.tls_fp,
        "account_key": ctx.keys.account_key,
        "account": v.account,
        "decision": if v.refused_by.is_some() { "refuse" } else { "allow" },
        "status": status,
        "rule": v.rule,
        "refused_by": v.refused_by,
        "why": v.why.map(|w| w.as_str()),
        "claimer": v.claimer,
        "elapsed_us": ctx.started.map_or(0, |s| s.elapsed().as_micros() as u64),
        "error": e.map(|e| e.etype().as_str()),
    });
    sink.write(line.to_string());
}
