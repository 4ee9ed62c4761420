//! The span of one request, built when it is done from what its phases noted
//! ([`crate::stage::context::RequestObs`]) and its context.
//!
//! Attributes are bounded facts: route class, deciding rule, decision and refusal
//! reason, the kinds of keys the request was counted by, whether its token belongs to
//! an account the gateway knows, statuses and latencies. Never the token, the
//! Authorization header, a claim URL, a JWT, the path, the client address or the
//! account id: a trace backend is read by more people than the ledger.

use opentelemetry::{Array, KeyValue, StringValue, Value};

use crate::stage::context::RequestCtx;

/// Whether the request's bearer token belongs to an account the gateway knows:
/// `known`, `unknown` (a token nobody issued, or one from before a restart without
/// the journal) or `none` (no token).
pub fn account_kind(ctx: &RequestCtx) -> &'static str {
    match ctx.keys.account_key.as_deref() {
        _ if ctx.account.is_some() => "known",
        Some(key) if key.starts_with("tok_") => "unknown",
        Some(_) => "known",
        None => "none",
    }
}

/// The kinds of keys the request was counted by (`ip`, `http_fp`, `tls_fp`,
/// `account`), never their values.
pub fn key_kinds(ctx: &RequestCtx) -> Vec<StringValue> {
    let keys = &ctx.keys;
    let mut kinds = Vec::with_capacity(4);
    if keys.client_ip.is_some() {
        kinds.push("ip".into());
    }
    if keys.http_fp.is_some() {
        kinds.push("http_fp".into());
    }
    if keys.tls_fp.is_some() {
        kinds.push("tls_fp".into());
    }
    if account_kind(ctx) == "known" {
        kinds.push("account".into());
    }
    kinds
}

/// The span's attributes; `status`: what the client was answered (0: nothing).
pub fn attributes(ctx: &RequestCtx, status: u16) -> Vec<KeyValue> {
    let obs = &ctx.obs;
    let mut out = Vec::with_capacity(12);
    out.push(KeyValue::new("gateway.route", ctx.route_label()));
    if let Some(rule) = &obs.rule {
        out.push(KeyValue::new("gateway.rule", rule.clone()));
    }
    match obs.refused {
        Some(why) => {
            out.push(KeyValue::new("gateway.decision", "refused"));
            out.push(KeyValue::new("gateway.refusal", why.as_str()));
        }
        None => out.push(KeyValue::new("gateway.decision", "allowed")),
    }
    out.push(KeyValue::new("gateway.key_kinds", Value::Array(Array::String(key_kinds(ctx)))));
    out.push(KeyValue::new("gateway.account", account_kind(ctx)));
    if let Some(d) = obs.decision {
        out.push(KeyValue::new("gateway.decision.duration_us", d.as_micros() as i64));
    }
    if status > 0 {
        out.push(KeyValue::new("http.response.status_code", i64::from(status)));
    }
    if let Some(s) = obs.upstream_status {
        out.push(KeyValue::new("gateway.upstream.status_code", i64::from(s)));
    }
    if let Some(d) = obs.upstream {
        out.push(KeyValue::new("gateway.upstream.duration_ms", d.as_secs_f64() * 1000.0));
    }
    if obs.upstream_failed {
        out.push(KeyValue::new("gateway.upstream.failed", true));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::context::RequestCtx;

    #[test]
    fn attributes_name_kinds_of_keys_never_their_values() {
        let mut ctx =
            RequestCtx { route: Some(policy::RouteClass::DeployRead), ..Default::default() };
        ctx.keys.client_ip = Some("192.0.2.7".parse().expect("ip"));
        ctx.keys.http_fp = Some("hf1_secretish".into());
        ctx.keys.account_key = Some("tok_0123456789abcdef".into());
        let attrs = attributes(&ctx, 200);
        let text = format!("{attrs:?}");
        for value in ["192.0.2.7", "hf1_secretish", "tok_0123456789abcdef"] {
            assert!(!text.contains(value), "{value} in {text}");
        }
        assert_eq!(account_kind(&ctx), "unknown");
        assert_eq!(key_kinds(&ctx), vec![StringValue::from("ip"), StringValue::from("http_fp")]);
        ctx.keys.account_key = Some("acc-1".into());
        assert_eq!(account_kind(&ctx), "known");
        ctx.keys.account_key = None;
        assert_eq!(account_kind(&ctx), "none");
    }
}
