//! The checks on a manual clock: account limits see the same client as the rate limits.

use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;
use crate::tracker::Tracker;

const TRUSTED_CF: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.1/32"]
ip_header = "cf-connecting-ip"
tls_fingerprint_header = "cf-ja4"
[accounts.live]
tls_fp = 1
"#;

const CF_JA4: &str = "t13d1516h2_8daaf6152771_02713d6af862";

fn enforcer(policy_text: &str, clock: Arc<ManualClock>) -> Enforcer {
    let policy = policy::compile_str("p.toml", policy_text).expect("policy");
    let tracker = Tracker::new(&policy, None, None).expect("tracker");
    Enforcer::with_policy(policy, tracker, clock)
}

fn create_from(client: &str) -> RequestHeader {
    let mut req =
        RequestHeader::build("POST", b"/client/v4/provisioning/previews", None).expect("request");
    req.append_header("user-agent", "wrangler/4").expect("header");
    req.append_header("cf-connecting-ip", client).expect("header");
    req.append_header("cf-ja4", CF_JA4).expect("header");
    req
}

fn created_answer(id: &str) -> Vec<u8> {
    serde_json::json!({"success": true, "result": {"account": {
        "id": id, "apiToken": format!("token-{id}"), "expiresAt": "1970-01-01T01:00:00Z"}}})
    .to_string()
    .into_bytes()
}

/// Runs the checks of one create from `client` behind the trusted proxy and, when
/// they pass, records the account the platform would have made.
fn create(e: &Enforcer, client: &str, id: &str) -> Result<(), Refusal> {
    let mut ctx = RequestCtx::default();
    decide(e, &create_from(client), Some("127.0.0.1".parse().expect("ip")), None, &mut ctx)?;
    let source = ctx.source.clone().expect("provisioning has a source");
    let tracker = e.tracker().expect("tracker");
    tracker.record_created(&created_answer(id), source, e.now()).expect("recorded");
    Ok(())
}

#[test]
fn account_limits_count_a_trusted_proxys_tls_fingerprint() {
    let clock = ManualClock::at(0);
    let e = enforcer(TRUSTED_CF, clock.clone());
    create(&e, "203.0.113.1", "acct-1").expect("the first account");
    let second =
        create(&e, "198.51.100.2", "acct-2").expect_err("same cf-ja4 from another address");
    assert_eq!(second.why, Why::AccountLimit);
    assert_eq!(second.status(), 429);
    assert!(second.message.contains("your TLS client"), "{}", second.message);
    // Live accounts end with their expiry (an hour): then the fingerprint may create again.
    clock.advance(3601);
    create(&e, "198.51.100.2", "acct-3").expect("the first account expired");
}

#[test]
fn the_source_keys_are_the_identity_the_rate_limits_saw() {
    let e = enforcer(TRUSTED_CF, ManualClock::at(0));
    let mut ctx = RequestCtx::default();
    decide(&e, &create_from("203.0.113.9"), Some("127.0.0.1".parse().expect("ip")), None, &mut ctx)
        .expect("allowed");
    let source = ctx.source.expect("source");
    assert_eq!(source.ip, "203.0.113.9".parse::<IpAddr>().expect("ip"));
    assert_eq!(source.tls_fp.as_deref(), Some(CF_JA4));
    assert_eq!(ctx.keys.http_fp, source.http_fp, "logged and counted by the same HTTP fingerprint");
    assert_eq!(ctx.keys.client_ip, Some(source.ip));
}

#[test]
fn a_request_without_a_peer_address_is_refused() {
    let e = enforcer("version = 1\n", ManualClock::at(0));
    let refusal = decide(&e, &create_from("203.0.113.9"), None, None, &mut RequestCtx::default())
        .expect_err("refused");
    assert_eq!((refusal.why, refusal.status()), (Why::Denied, 403));
}
