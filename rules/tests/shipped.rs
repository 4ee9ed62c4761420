//! Every shipped policy compiles, and each behaves as its comments promise.

use policy::clock::FakeRelativeClock;
use policy::{compile_file, Engine, Request};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CREATE: &str = "/client/v4/provisioning/previews";
const CHALLENGE: &str = "/client/v4/provisioning/previews/challenge";

fn all_toml(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).expect("rules dir").flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() && !p.ends_with("target") && !p.ends_with("tests") {
            all_toml(&p, out);
        } else if p.extension().and_then(|e| e.to_str()) == Some("toml") && !p.ends_with("Cargo.toml") {
            out.push(p);
        }
    }
}

fn engine(path: &Path) -> (Engine<FakeRelativeClock>, FakeRelativeClock) {
    let policy = compile_file(path).unwrap_or_else(|e| panic!("{e}"));
    let clock = FakeRelativeClock::default();
    (Engine::with_clock(policy, clock.clone()), clock)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn req<'a>(method: &'a str, path: &'a str, peer: IpAddr, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
    Request { method, path, peer, http_version: "HTTP/1.1", headers, tls_fp: None, account: None }
}

/// How many of `n` identical requests pass.
fn passes(e: &Engine<FakeRelativeClock>, r: &Request<'_>, n: usize) -> usize {
    (0..n).filter(|_| e.decide(r).is_allowed()).count()
}

const UNDICI: [(&str, &str); 2] = [("user-agent", "undici"), ("accept", "*/*")];

#[test]
fn every_shipped_policy_compiles_and_is_checked() {
    let dir = Path::new(rules::RULES_DIR);
    let mut files = Vec::new();
    all_toml(dir, &mut files);
    assert!(files.len() >= 8, "{files:?}");
    for f in &files {
        let name = f.strip_prefix(dir).expect("inside").to_string_lossy().to_string();
        let (e, clock) = engine(f);
        // Every policy admits a first ordinary request.
        assert!(e.decide(&req("POST", CHALLENGE, ip("203.0.113.50"), &UNDICI)).is_allowed(), "{name}");
        match name.as_str() {
            "default.toml" => check_default(&e, &clock),
            "strict.toml" => check_strict(&e),
            "examples/lists-from-file.toml" => check_lists(&e, f),
            "examples/shadow.toml" => check_shadow(&e),
            "examples/fingerprint-key.toml" => check_fingerprint(&e),
            "examples/combined-key.toml" => check_combined(&e),
            "examples/cloudflare-proxy.toml" => check_cloudflare(&e),
            "examples/cost.toml" => check_cost(&e, &clock),
            other => eprintln!("{other}: compiled; no specific checks yet"),
        }
    }
}

fn check_default(e: &Engine<FakeRelativeClock>, clock: &FakeRelativeClock) {
    let r = req("POST", CREATE, ip("198.51.100.7"), &UNDICI);
    assert_eq!(passes(e, &r, 10), 3, "burst 3 per IP");
    let d = e.decide(&r);
    assert_eq!(d.status(), Some(429));
    assert!(d.message.contains("claim an existing temporary account"), "{}", d.message);
    assert_eq!(d.retry_after_secs, Some(600), "6/hour refills one every 10 minutes");
    clock.advance(Duration::from_secs(600));
    assert!(e.decide(&r).is_allowed());
    // Rotating inside one /64 hits the network limit (burst 5) even with fresh IPs.
    let ok = (1..=10).filter(|i| e.decide(&req("POST", CREATE, ip(&format!("2001:db8:7::{i}")), &UNDICI)).is_allowed()).count();
    assert_eq!(ok, 5);
    // Deploy writes are per account.
    let mut w = req("PUT", "/client/v4/accounts/abc/workers/scripts/app", ip("192.0.2.1"), &[]);
    w.account = Some("acct");
    assert_eq!(passes(e, &w, 40), 30);
}

fn check_strict(e: &Engine<FakeRelativeClock>) {
    assert_eq!(passes(e, &req("POST", CREATE, ip("198.51.100.7"), &UNDICI), 5), 2);
    // IPv6 counted per /56: rotating /64s inside one /56 share the network budget of 3.
    let ok = (1..=6)
        .filter(|i| e.decide(&req("POST", CREATE, ip(&format!("2001:db8:0:{i}::1")), &UNDICI)).is_allowed())
        .count();
    assert_eq!(ok, 3);
}

fn check_lists(e: &Engine<FakeRelativeClock>, f: &Path) {
    assert_eq!(e.decide(&req("GET", "/", ip("2001:db8:bad:1::1"), &[])).status(), Some(403));
    assert_eq!(e.decide(&req("GET", "/", ip("192.0.2.9"), &[])).status(), Some(403));
    assert_eq!(passes(e, &req("POST", CREATE, ip("198.51.100.1"), &[]), 10), 10);
    let files = e.policy().source_files();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0], f);
    assert!(files[1].ends_with("blocked.txt"));
}

fn check_shadow(e: &Engine<FakeRelativeClock>) {
    let r = req("POST", CREATE, ip("198.51.100.1"), &[]);
    assert!(e.decide(&r).shadow.is_empty());
    let d = e.decide(&r);
    assert!(d.is_allowed());
    assert_eq!(d.shadow, vec!["create-per-ip-strict-trial".to_string()]);
    assert_eq!(e.stats().rules[0].shadow_refused, 1);
}

fn check_fingerprint(e: &Engine<FakeRelativeClock>) {
    let curl = [("user-agent", "curl/8.5.0")];
    for i in 1..=2 {
        assert!(e.decide(&req("POST", CREATE, ip(&format!("192.0.2.{i}")), &curl)).is_allowed());
    }
    assert!(!e.decide(&req("POST", CREATE, ip("203.0.113.3"), &curl)).is_allowed(), "address rotation does not help");
    assert!(e.decide(&req("POST", CREATE, ip("203.0.113.3"), &UNDICI)).is_allowed());
}

fn check_combined(e: &Engine<FakeRelativeClock>) {
    let a = |s: &str| req("POST", CREATE, ip(s), &UNDICI);
    assert!(e.decide(&a("2001:db8:1:1::1")).is_allowed());
    assert!(e.decide(&a("2001:db8:1:2::1")).is_allowed());
    assert!(!e.decide(&a("2001:db8:1:3::1")).is_allowed(), "same /48, same client kind");
    assert!(e.decide(&a("2001:db8:2::1")).is_allowed(), "other /48");
    let curl = [("user-agent", "curl/8")];
    assert!(e.decide(&req("POST", CREATE, ip("2001:db8:1:4::1"), &curl)).is_allowed(), "other client kind");
}

fn check_cloudflare(e: &Engine<FakeRelativeClock>) {
    let h = [("cf-connecting-ip", "198.51.100.20"), ("cf-ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1")];
    let d = e.decide(&req("POST", CREATE, ip("173.245.48.1"), &h));
    assert_eq!(d.client_ip, ip("198.51.100.20"));
    // Untrusted peer: header ignored.
    assert_eq!(e.decide(&req("POST", CREATE, ip("192.0.2.1"), &h)).client_ip, ip("192.0.2.1"));
    // Same TLS client from the same /24 via another edge address: burst 2 for prefix+tls_fp.
    let h2 = [("cf-connecting-ip", "198.51.100.21"), ("cf-ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1")];
    assert!(e.decide(&req("POST", CREATE, ip("173.245.48.2"), &h2)).is_allowed());
    let h3 = [("cf-connecting-ip", "198.51.100.22"), ("cf-ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1")];
    assert!(!e.decide(&req("POST", CREATE, ip("173.245.48.2"), &h3)).is_allowed());
}

fn check_cost(e: &Engine<FakeRelativeClock>, clock: &FakeRelativeClock) {
    let mut put = req("PUT", "/client/v4/accounts/a/workers/scripts/x", ip("192.0.2.1"), &[]);
    put.account = Some("acct");
    assert_eq!(passes(e, &put, 5), 2, "cost 5 against burst 10");
    let d = e.decide(&put);
    assert_eq!(d.retry_after_secs, Some(300), "5 cells at one per minute");
    clock.advance(Duration::from_secs(300));
    assert!(e.decide(&put).is_allowed());
}
