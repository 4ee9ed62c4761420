//! Engine behaviour on a fake clock: limits, identity, lists, shadow, cost, reload, cap.

mod common;
use common::*;
use policy::{compile_str, Outcome};

const PER_IP: &str = r#"
version = 1
[[rule]]
name = "create-per-ip"
match = { route = "provision-create" }
action = "limit"
limits = [{ key = "ip", rate = "6/hour", burst = 3 }]
"#;

#[test]
fn burst_refused_then_admitted_after_refill() {
    let (e, clock) = engine(PER_IP);
    let r = req("POST", CREATE, ip("198.51.100.7"), &[]);
    for _ in 0..3 {
        assert!(e.decide(&r).is_allowed());
    }
    let d = e.decide(&r);
    assert_eq!(d.outcome, Outcome::Refuse { status: 429 });
    assert_eq!(d.retry_after_secs, Some(600));
    assert!(d.message.contains("Rate limit \"create-per-ip\" exceeded"), "{}", d.message);
    assert!(d.message.contains("Retry in 600 seconds"), "{}", d.message);
    let h = d.ratelimit_headers();
    assert!(h.contains(&("RateLimit-Policy", "\"create-per-ip\";q=6;w=3600".to_string())), "{h:?}");
    assert!(h.contains(&("RateLimit", "\"create-per-ip\";r=0;t=600".to_string())), "{h:?}");
    assert!(h.contains(&("Retry-After", "600".to_string())));
    advance(&clock, 599);
    assert!(!e.decide(&r).is_allowed());
    advance(&clock, 1);
    assert!(e.decide(&r).is_allowed());
    assert!(!e.decide(&r).is_allowed());
    // Other routes are not limited by this rule.
    assert!(e.decide(&req("POST", CHALLENGE, ip("198.51.100.7"), &[])).is_allowed());
}

#[test]
fn allowed_responses_carry_most_constrained_limit() {
    let (e, _clock) = engine(PER_IP);
    let r = req("POST", CREATE, ip("198.51.100.7"), &[]);
    let d = e.decide(&r);
    let h = d.ratelimit_headers();
    assert_eq!(h[1], ("RateLimit", "\"create-per-ip\";r=2;t=600".to_string()));
    assert_eq!(h.len(), 2);
}

#[test]
fn rotating_within_ipv6_64_hits_the_64_limit() {
    let (e, _clock) = engine(
        r#"
version = 1
[[rule]]
name = "create-per-64"
match = { route = "provision-create" }
action = "limit"
limits = [{ key = "ipv6/64", rate = "10/hour", burst = 3 }]
"#,
    );
    let addrs = [
        "2001:db8:1:2::1",
        "2001:db8:1:2::ffff",
        "2001:db8:1:2:aaaa::9",
        "2001:db8:1:2:ffff:ffff:ffff:fffe",
    ];
    for a in &addrs[..3] {
        assert!(e.decide(&req("POST", CREATE, ip(a), &[])).is_allowed());
    }
    let d = e.decide(&req("POST", CREATE, ip(addrs[3]), &[]));
    assert_eq!(d.status(), Some(429));
    assert!(d.message.contains("your network (IPv6 /64)"), "{}", d.message);
    // A different /64 is unaffected.
    assert!(e.decide(&req("POST", CREATE, ip("2001:db8:1:3::1"), &[])).is_allowed());
    // A v4 client on an IPv6-only key falls back to its /24 (documented safe choice).
    for last in 1..=3 {
        assert!(e.decide(&req("POST", CREATE, ip(&format!("203.0.113.{last}")), &[])).is_allowed());
    }
    assert!(!e.decide(&req("POST", CREATE, ip("203.0.113.99"), &[])).is_allowed());
}

const PROXIED: &str = r#"
version = 1
[client]
trusted_proxies = ["10.0.0.0/8"]
[[rule]]
name = "per-ip"
action = "limit"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
"#;

#[test]
fn forwarded_for_from_untrusted_peer_changes_nothing() {
    let (e, _clock) = engine(PROXIED);
    let peer = ip("198.51.100.9");
    let h1 = [("X-Forwarded-For", "203.0.113.1")];
    let h2 = [("x-forwarded-for", "203.0.113.2")];
    let d = e.decide(&req("GET", "/", peer, &h1));
    assert!(d.is_allowed());
    assert_eq!(d.client_ip, peer);
    let d = e.decide(&req("GET", "/", peer, &h2));
    assert_eq!(d.client_ip, peer);
    assert!(!d.is_allowed(), "spoofed XFF must not buy a new bucket");
}

#[test]
fn forwarded_for_from_trusted_peer_uses_rightmost_untrusted() {
    let (e, _clock) = engine(PROXIED);
    let peer = ip("10.1.2.3");
    let h = [("X-Forwarded-For", "1.1.1.1, 203.0.113.5, 10.9.9.9")];
    assert_eq!(e.decide(&req("GET", "/", peer, &h)).client_ip, ip("203.0.113.5"));
    // Garbage falls back to the peer, never panics.
    let bad = [("X-Forwarded-For", "not-an-ip, ]]]")];
    assert_eq!(e.decide(&req("GET", "/", peer, &bad)).client_ip, peer);
    // IPv4-mapped IPv6 folds to IPv4.
    let mapped = [("X-Forwarded-For", "::ffff:203.0.113.77")];
    assert_eq!(e.decide(&req("GET", "/", peer, &mapped)).client_ip, ip("203.0.113.77"));
    assert_eq!(
        e.decide(&req("GET", "/", ip("::ffff:198.51.100.1"), &[])).client_ip,
        ip("198.51.100.1")
    );
}

#[test]
fn fingerprint_rotating_client_caught_by_prefix() {
    let (e, _clock) = engine(
        r#"
version = 1
[[rule]]
name = "create"
match = { route = "provision-create" }
action = "limit"
limits = [
  { key = "ip+http_fp", rate = "10/hour", burst = 10 },
  { key = "ipv4/24", rate = "4/hour", burst = 4 },
]
"#,
    );
    let uas = ["curl/8", "wrangler/4", "undici", "python-requests/2", "go-http-client/1.1", "x/1"];
    let mut allowed = 0;
    for (i, ua) in uas.iter().enumerate() {
        let h = [("user-agent", *ua)];
        let peer = ip(&format!("192.0.2.{}", i + 1));
        if e.decide(&req("POST", CREATE, peer, &h)).is_allowed() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 4);
}

#[test]
fn shadow_rules_forward_and_count() {
    let (e, _clock) = engine(
        r#"
version = 1
[[rule]]
name = "try-strict"
action = "shadow"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
"#,
    );
    let r = req("POST", CREATE, ip("192.0.2.1"), &[]);
    let d1 = e.decide(&r);
    assert!(d1.is_allowed() && d1.shadow.is_empty());
    let d2 = e.decide(&r);
    assert!(d2.is_allowed());
    assert_eq!(d2.shadow, vec!["try-strict".to_string()]);
    let s = e.stats();
    assert_eq!(s.rules[0].shadow_refused, 1);
    assert_eq!(s.rules[0].matched, 2);
    assert_eq!(s.rules[0].refused, 0);
}

const LISTS: &str = r#"
version = 1
[lists.blocked]
cidrs = ["192.0.2.0/24"]
[lists.partners]
cidrs = ["198.51.100.0/24", "2001:db8:feed::/48"]
[[rule]]
name = "deny-blocked"
match = { list = "blocked" }
action = "deny"
message = "Your network is blocked."
[[rule]]
name = "allow-partners"
match = { list = "partners" }
action = "allow"
[[rule]]
name = "per-ip"
action = "limit"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
"#;

#[test]
fn deny_list_gives_403() {
    let (e, _clock) = engine(LISTS);
    let d = e.decide(&req("GET", "/", ip("192.0.2.200"), &[]));
    assert_eq!(d.status(), Some(403));
    assert_eq!(d.rule.as_deref(), Some("deny-blocked"));
    assert_eq!(d.message, "Your network is blocked.");
    assert_eq!(d.retry_after_secs, None);
}

#[test]
fn allow_list_exempts() {
    let (e, _clock) = engine(LISTS);
    for _ in 0..20 {
        assert!(e.decide(&req("GET", "/", ip("198.51.100.4"), &[])).is_allowed());
        assert!(e.decide(&req("GET", "/", ip("2001:db8:feed:1::1"), &[])).is_allowed());
    }
    assert!(e.decide(&req("GET", "/", ip("203.0.113.1"), &[])).is_allowed());
    assert!(!e.decide(&req("GET", "/", ip("203.0.113.1"), &[])).is_allowed());
    assert_eq!(e.stats().rules[1].allowed, 40);
}

#[test]
fn cost_weighs() {
    let (e, clock) = engine(
        r#"
version = 1
[[rule]]
name = "writes"
match = { route = "deploy-write" }
action = "limit"
limits = [{ key = "account", rate = "10/minute", burst = 10, cost = 4 }]
"#,
    );
    let mut r = req("PUT", "/client/v4/accounts/abc/workers/scripts/x", ip("192.0.2.1"), &[]);
    r.account = Some("acct-1");
    assert!(e.decide(&r).is_allowed());
    assert!(e.decide(&r).is_allowed());
    let d = e.decide(&r);
    assert_eq!(d.status(), Some(429));
    // 8 of 10 used; 4 needed: wait for 2 cells = 12 s.
    assert_eq!(d.retry_after_secs, Some(12));
    advance(&clock, 12);
    assert!(e.decide(&r).is_allowed());
    // Another account has its own budget.
    r.account = Some("acct-2");
    assert!(e.decide(&r).is_allowed());
}

#[test]
fn refused_request_does_not_charge_other_limits() {
    let (e, _clock) = engine(
        r#"
version = 1
[[rule]]
name = "wide"
action = "limit"
limits = [{ key = "global", rate = "3/hour", burst = 3 }]
[[rule]]
name = "narrow"
action = "limit"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
"#,
    );
    let a = req("GET", "/", ip("192.0.2.1"), &[]);
    assert!(e.decide(&a).is_allowed());
    for _ in 0..5 {
        assert_eq!(e.decide(&a).rule.as_deref(), Some("narrow"));
    }
    // The global budget still has 2 left for others.
    assert!(e.decide(&req("GET", "/", ip("192.0.2.2"), &[])).is_allowed());
    assert!(e.decide(&req("GET", "/", ip("192.0.2.3"), &[])).is_allowed());
    assert_eq!(e.decide(&req("GET", "/", ip("192.0.2.4"), &[])).rule.as_deref(), Some("wide"));
}

#[test]
fn reload_keeps_unchanged_counters_and_resets_changed() {
    let src = r#"
version = 1
[[rule]]
name = "a"
action = "limit"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
[[rule]]
name = "b"
match = { method = "POST" }
action = "limit"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
"#;
    let (e, _clock) = engine(src);
    let get = req("GET", "/", ip("192.0.2.1"), &[]);
    let post = req("POST", "/x", ip("192.0.2.2"), &[]);
    assert!(e.decide(&get).is_allowed());
    assert!(e.decide(&post).is_allowed());
    // Change only rule "b": its burst goes from 1 to 2.
    let idx = src.rfind("burst = 1").expect("rule b");
    let changed = format!("{}burst = 2{}", &src[..idx], &src[idx + "burst = 1".len()..]);
    let report = e.reload(compile_str("test.toml", &changed).expect("valid"));
    assert_eq!(report.kept, vec!["a/ip 1/hour burst 1".to_string()]);
    assert_eq!(report.reset, vec!["b/ip 1/hour burst 2".to_string()]);
    assert_eq!(report.removed, vec!["b/ip 1/hour burst 1".to_string()]);
    assert!(!e.decide(&get).is_allowed(), "unchanged limit \"a\" keeps its counter");
    // Rule counters survive a reload too (rule "a" saw three requests).
    assert_eq!(e.stats().rules[0].matched, 3);
}

#[test]
fn reload_reset_gives_fresh_bucket() {
    let (e, _clock) = engine(PER_IP);
    let r = req("POST", CREATE, ip("192.0.2.1"), &[]);
    for _ in 0..3 {
        assert!(e.decide(&r).is_allowed());
    }
    assert!(!e.decide(&r).is_allowed());
    let same = e.reload(compile_str("t.toml", PER_IP).expect("valid"));
    assert_eq!(same.kept.len(), 1);
    assert!(!e.decide(&r).is_allowed());
    let changed =
        e.reload(compile_str("t.toml", &PER_IP.replace("6/hour", "7/hour")).expect("valid"));
    assert_eq!(changed.reset.len(), 1);
    assert!(e.decide(&r).is_allowed());
}

#[test]
fn table_cap_diverts_new_keys_to_shared_overflow_bucket() {
    let (e, clock) = engine(
        r#"
version = 1
[tables]
max_keys = 2
[[rule]]
name = "per-ip"
action = "limit"
limits = [{ key = "ip", rate = "1/minute", burst = 1 }]
"#,
    );
    assert!(e.decide(&req("GET", "/", ip("192.0.2.1"), &[])).is_allowed());
    assert!(e.decide(&req("GET", "/", ip("192.0.2.2"), &[])).is_allowed());
    // Table full: the third and fourth newcomers share one overflow bucket.
    assert!(e.decide(&req("GET", "/", ip("192.0.2.3"), &[])).is_allowed());
    assert!(!e.decide(&req("GET", "/", ip("192.0.2.4"), &[])).is_allowed());
    let s = e.stats();
    assert_eq!(s.tables[0].keys, 3, "two keys plus the overflow bucket");
    assert_eq!(s.tables[0].overflowed, 1, "only charged overflow requests are counted");
    // Tracked keys keep their own buckets.
    assert!(!e.decide(&req("GET", "/", ip("192.0.2.1"), &[])).is_allowed());
    // Once buckets are fresh again, the sweep frees room and newcomers get their own key.
    advance(&clock, 61);
    e.sweep();
    assert_eq!(e.stats().tables[0].keys, 0);
    assert_eq!(e.stats().tables[0].evicted, 3, "the sweep counts the keys it dropped");
    assert!(e.decide(&req("GET", "/", ip("192.0.2.5"), &[])).is_allowed());
    assert_eq!(e.stats().tables[0].overflowed, 1);
}

#[test]
fn explain_shows_route_keys_rules_and_decision_without_side_effects() {
    let (e, _clock) = engine(
        r#"
version = 1
[[rule]]
name = "create-per-64"
match = { route = "provision-create" }
action = "limit"
limits = [{ key = "ipv6/64+http_fp", rate = "1/hour", burst = 1 }]
"#,
    );
    let h = [("user-agent", "undici")];
    let r = req("POST", CREATE, ip("2001:db8::5"), &h);
    let x = e.explain(&r).to_string();
    assert!(x.contains("route: provision-create"), "{x}");
    assert!(x.contains("client ip: 2001:db8::5"), "{x}");
    assert!(x.contains("key ipv6=2001:db8::/64|http_fp=hf1_11_nnn_undici_"), "{x}");
    assert!(x.contains("rule \"create-per-64\" (limit) matched"), "{x}");
    assert!(x.contains("decision: allow"), "{x}");
    // explain charged nothing.
    assert!(e.decide(&r).is_allowed());
    let x = e.explain(&r).to_string();
    assert!(x.contains("REFUSE, retry in 3600s"), "{x}");
    assert!(x.contains("decision: refuse 429 by rule \"create-per-64\""), "{x}");
    assert_eq!(e.stats().rules[0].matched, 1);
}

#[test]
fn missing_account_handling() {
    let (e, _clock) = engine(
        r#"
version = 1
[[rule]]
name = "per-account-skip"
action = "limit"
limits = [{ key = "account", rate = "1/hour", burst = 1, missing = "skip" }]
[[rule]]
name = "per-account-ip"
match = { method = "PUT" }
action = "limit"
limits = [{ key = "account", rate = "1/hour", burst = 1 }]
"#,
    );
    let g = req("GET", "/", ip("192.0.2.1"), &[]);
    assert!(e.decide(&g).is_allowed());
    assert!(e.decide(&g).is_allowed(), "skip: no account, no limit");
    let p1 = req("PUT", "/", ip("192.0.2.1"), &[]);
    assert!(e.decide(&p1).is_allowed());
    assert!(!e.decide(&p1).is_allowed(), "default: counted by IP instead");
    assert!(e.decide(&req("PUT", "/", ip("192.0.2.2"), &[])).is_allowed());
}

#[test]
fn trusted_proxy_single_header_and_tls_fp_header() {
    let (e, _clock) = engine(
        r#"
version = 1
[client]
trusted_proxies = ["10.0.0.0/8"]
ip_header = "cf-connecting-ip"
tls_fingerprint_header = "cf-ja4"
[[rule]]
name = "per-tls"
action = "limit"
limits = [{ key = "tls_fp", rate = "1/hour", burst = 1, missing = "skip" }]
"#,
    );
    let h =
        [("CF-Connecting-IP", "2001:db8::9"), ("cf-ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1")];
    let d = e.decide(&req("GET", "/", ip("10.0.0.1"), &h));
    assert_eq!(d.client_ip, ip("2001:db8::9"));
    assert!(!e.decide(&req("GET", "/", ip("10.0.0.2"), &h)).is_allowed());
    // Same headers from an untrusted peer: ignored, so no tls_fp and the limit is skipped.
    let d = e.decide(&req("GET", "/", ip("192.0.2.1"), &h));
    assert_eq!(d.client_ip, ip("192.0.2.1"));
    assert!(d.is_allowed());
    assert!(e.decide(&req("GET", "/", ip("192.0.2.1"), &h)).is_allowed());
}

/// A limit rule that lets requests through counts them as `allowed`, so a rule's
/// outcomes add up to what it matched; a request refused by a later rule is counted
/// by that rule only, and a shadow rule that would pass counts as allowed too.
#[test]
fn limit_rules_count_the_requests_they_let_through() {
    let (e, _clock) = engine(
        r#"
version = 1
[[rule]]
name = "per-ip"
action = "limit"
limits = [{ key = "ip", rate = "10/hour", burst = 10 }]
[[rule]]
name = "try-strict"
action = "shadow"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
[[rule]]
name = "create-per-ip"
match = { route = "provision-create" }
action = "limit"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
"#,
    );
    let r = req("POST", CREATE, ip("198.51.100.7"), &[]);
    assert!(e.decide(&r).is_allowed());
    assert!(!e.decide(&r).is_allowed());
    assert!(e.decide(&req("GET", "/", ip("198.51.100.7"), &[])).is_allowed());
    let s = e.stats();
    let counts = |i: usize| {
        let r = &s.rules[i];
        (r.matched, r.allowed, r.refused, r.shadow_refused)
    };
    // per-ip: three matched; the refused create was refused by create-per-ip, not here.
    assert_eq!(counts(0), (3, 2, 0, 0));
    assert_eq!(counts(1), (3, 1, 0, 2));
    assert_eq!(counts(2), (2, 1, 1, 0));
}
