//! The access log: one line per finished request, with no secrets in it.
//!
//! Tokens travel in the Authorization header, which is never logged; a claim path
//! carries the claim secret, which is redacted; the account key is an account id or a
//! keyed hash.

use pingora::proxy::Session;
use pingora::Error;

use crate::stage::context::RequestCtx;

mod file;
pub use file::{file_enabled, file_sink, install_file};

/// Logs a finished request: a JSON line to the access log file when one is configured
/// (see [`file`]), and a debug-level line (one line per request on stderr is for
/// debugging; refusals and accounts are logged at info where they happen).
pub fn log_request(session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
    file::write(session, e, ctx);
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let elapsed_us = ctx.started.map_or(0, |s| s.elapsed().as_micros());
    let req = session.req_header();
    let keys = &ctx.keys;
    tracing::debug!(
        method = %req.method,
        path = %loggable_path(req.uri.path(), ctx.route),
        status,
        elapsed_us,
        route = ctx.route.map(|r| r.as_str()),
        client = keys.client_ip.map(|ip| ip.to_string()),
        http_fp = keys.http_fp.as_deref(),
        tls_fp = keys.tls_fp.as_deref(),
        account_key = keys.account_key.as_deref(),
        account = ctx.account.as_deref(),
        pow_hashes = ctx.pow_hashes,
        error = e.map(|e| e.etype().as_str()),
        "request"
    );
}

/// The request path as it may be logged: claim paths (`/claim/{secret}`) hold the
/// secret that owns an account, so everything after the claim prefix is replaced.
pub fn loggable_path(path: &str, route: Option<policy::RouteClass>) -> std::borrow::Cow<'_, str> {
    let claim_at = path.find("/claim/");
    match (route, claim_at) {
        (_, Some(at)) => format!("{}/claim/{{redacted}}", &path[..at]).into(),
        (Some(policy::RouteClass::Claim), None) => "{claim path redacted}".into(),
        _ => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;
    use policy::RouteClass;

    #[test]
    fn claim_secrets_never_reach_the_log() {
        assert_eq!(loggable_path("/claim/s3cr3t", Some(RouteClass::Claim)), "/claim/{redacted}");
        assert_eq!(loggable_path("/x/claim/s3cr3t/confirm", None), "/x/claim/{redacted}");
        assert_eq!(
            loggable_path("/custom-claim-route/s3cr3t", Some(RouteClass::Claim)),
            "{claim path redacted}"
        );
        assert_eq!(
            loggable_path("/client/v4/accounts/a/queues", Some(RouteClass::DeployWrite)),
            "/client/v4/accounts/a/queues"
        );
    }
}
