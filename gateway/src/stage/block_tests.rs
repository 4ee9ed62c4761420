//! The block check through `decide`, on a manual clock: first, with its reason, for its
//! TTL only.

use std::sync::Arc;

use pingora::http::RequestHeader;

use crate::clock::{Clock, ManualClock};
use crate::enforce::Enforcer;
use crate::stage::context::RequestCtx;
use crate::stage::decide::decide;
use crate::stage::refusal::Why;
use crate::tracker::Tracker;

/// A policy whose only rule refuses every create: a blocked request must be refused by
/// the block, not by this rule.
const POLICY: &str = r#"
version = 1
[[rule]]
name = "no-creates"
match = { route = "provision-create" }
action = "deny"
"#;

fn enforcer(clock: Arc<ManualClock>) -> Enforcer {
    let policy = policy::compile_str("p.toml", POLICY).expect("policy");
    let tracker = Tracker::new(&policy, None, None).expect("tracker");
    Enforcer::with_policy(policy, tracker, clock)
}

fn get_from(peer: &str) -> (RequestHeader, std::net::IpAddr) {
    let mut req = RequestHeader::build("GET", b"/client/v4/user", None).expect("request");
    req.append_header("user-agent", "wrangler/4").expect("header");
    (req, peer.parse().expect("ip"))
}

#[test]
fn a_block_refuses_first_with_its_reason_until_its_ttl() {
    let clock = ManualClock::at(1_000);
    let e = enforcer(clock.clone());
    let tracker = e.tracker().expect("tracker");
    let (req, peer) = get_from("198.51.100.7");
    decide(&e, &req, Some(peer), None, &mut RequestCtx::default()).expect("not blocked yet");

    let target = "198.51.100.0/24".parse().expect("target");
    tracker.blocks().block(target, "credential stuffing", 120, clock.now()).expect("block");
    let refusal =
        decide(&e, &req, Some(peer), None, &mut RequestCtx::default()).expect_err("blocked");
    assert_eq!((refusal.why, refusal.status()), (Why::Blocked, 403));
    assert!(refusal.message.contains("credential stuffing"), "{}", refusal.message);
    assert!(refusal.message.contains("lifts in 120 seconds"), "{}", refusal.message);
    assert_eq!(refusal.headers, vec![("Retry-After", "120".to_string())]);

    // A create from the blocked network is refused by the block, before the deny rule.
    let mut create =
        RequestHeader::build("POST", b"/client/v4/provisioning/previews", None).expect("req");
    create.append_header("user-agent", "wrangler/4").expect("header");
    let r = decide(&e, &create, Some(peer), None, &mut RequestCtx::default()).expect_err("refused");
    assert!(r.message.starts_with("Blocked by the operator"), "{}", r.message);

    clock.advance(119);
    assert!(decide(&e, &req, Some(peer), None, &mut RequestCtx::default()).is_err());
    clock.advance(1);
    decide(&e, &req, Some(peer), None, &mut RequestCtx::default()).expect("the TTL is over");
    assert_eq!(tracker.blocks().refused_total(), 3);
    let counts = tracker.decisions().of(peer).expect("counted");
    assert_eq!((counts.refused, counts.blocked), (3, 3));
}

#[test]
fn a_fingerprint_block_catches_the_client_from_any_address() {
    let clock = ManualClock::at(0);
    let e = enforcer(clock.clone());
    let tracker = e.tracker().expect("tracker");
    let (req, peer) = get_from("203.0.113.1");
    let mut ctx = RequestCtx::default();
    // A block of another fingerprint makes the stage compute this one.
    tracker.blocks().block("http_fp:hf1_other".parse().expect("t"), "x", 60, 0).expect("block");
    decide(&e, &req, Some(peer), None, &mut ctx).expect("another fingerprint");
    let fp = ctx.keys.http_fp.clone().expect("the fingerprint was computed");
    let target = format!("http_fp:{fp}").parse().expect("target");
    tracker.blocks().block(target, "scripted signups", 60, 0).expect("block");
    let (req2, peer2) = get_from("192.0.2.200");
    let r = decide(&e, &req2, Some(peer2), None, &mut RequestCtx::default()).expect_err("blocked");
    assert!(r.message.contains("scripted signups"), "{}", r.message);
}
