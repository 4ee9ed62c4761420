//! Every shipped policy in `rules/` compiles, each behaves as its comments promise, and
//! `gateway check` accepts them all, as the README runs it.

use policy::accounts::{AccountBook, AccountLimitKind, SourceKeys, SourceKind, TokenHasher};
use policy::clock::FakeRelativeClock;
use policy::ledger::{BudgetAction, Ledger};
use policy::platform::classify_default as classify;
use policy::quota::{AccountUsage, AssetManifest, ResourceCounts, ResourceKind, ResourceOp};
use policy::{compile_file, Engine, Policy, Request};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CREATE: &str = "/client/v4/provisioning/previews";
const CHALLENGE: &str = "/client/v4/provisioning/previews/challenge";

/// The repository's `rules/` folder.
fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules").canonicalize().expect("rules/ exists")
}

/// Every file under `dir`, sorted, folders walked.
fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("rules dir").flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn all_toml(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut files = Vec::new();
    all_files(dir, &mut files);
    out.extend(
        files.into_iter().filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml")),
    );
}

fn engine(path: &Path) -> (Engine<FakeRelativeClock>, FakeRelativeClock) {
    let policy = compile_file(path).unwrap_or_else(|e| panic!("{e}"));
    let clock = FakeRelativeClock::default();
    (Engine::with_clock(policy, clock.clone()), clock)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn req<'a>(
    method: &'a str,
    path: &'a str,
    peer: IpAddr,
    headers: &'a [(&'a str, &'a str)],
) -> Request<'a> {
    Request { method, path, peer, http_version: "HTTP/1.1", headers, tls_fp: None, account: None }
}

/// How many of `n` identical requests pass.
fn passes(e: &Engine<FakeRelativeClock>, r: &Request<'_>, n: usize) -> usize {
    (0..n).filter(|_| e.decide(r).is_allowed()).count()
}

const UNDICI: [(&str, &str); 2] = [("user-agent", "undici"), ("accept", "*/*")];

#[test]
fn every_shipped_policy_compiles_and_is_checked() {
    let dir = rules_dir();
    let dir = dir.as_path();
    let mut files = Vec::new();
    all_toml(dir, &mut files);
    assert!(files.len() >= 8, "{files:?}");
    for f in &files {
        let name = f.strip_prefix(dir).expect("inside").to_string_lossy().to_string();
        let (e, clock) = engine(f);
        check_sections_sound(&name, &e.policy());
        // Every policy admits a first ordinary request.
        assert!(
            e.decide(&req("POST", CHALLENGE, ip("203.0.113.50"), &UNDICI)).is_allowed(),
            "{name}"
        );
        match name.as_str() {
            "default.toml" => {
                check_default(&e, &clock);
                check_default_sections(&e.policy());
            }
            "strict.toml" => {
                check_strict(&e);
                check_strict_sections(&e.policy());
            }
            "examples/lists-from-file.toml" => check_lists(&e, f),
            "examples/shadow.toml" => check_shadow(&e),
            "examples/fingerprint-key.toml" => check_fingerprint(&e),
            "examples/combined-key.toml" => check_combined(&e),
            "examples/cloudflare-proxy.toml" => check_cloudflare(&e),
            "examples/cost.toml" => check_cost(&e, &clock),
            "examples/budgets.toml" => check_budgets_example(&e.policy()),
            "examples/quotas.toml" => check_quotas_example(&e.policy()),
            other => eprintln!("{other}: compiled; no specific checks yet"),
        }
    }
}

/// `rules/` holds policy files and the list files they read, nothing else: `gateway
/// check rules/*.toml` must see only policies.
#[test]
fn rules_folder_holds_only_policies_and_lists() {
    let dir = rules_dir();
    let mut files = Vec::new();
    all_files(&dir, &mut files);
    for f in &files {
        let ext = f.extension().and_then(|e| e.to_str());
        assert!(
            matches!(ext, Some("toml" | "txt")),
            "{} is neither a policy nor a list file",
            f.display()
        );
        if ext == Some("toml") {
            assert!(policy::compile_file(f).is_ok(), "{} is not a policy", f.display());
        }
    }
}

/// The real `gateway check` on every shipped policy, as the README runs it, exits 0.
#[test]
fn gateway_check_accepts_every_shipped_policy() {
    let dir = rules_dir();
    let mut files = Vec::new();
    for sub in [dir.clone(), dir.join("examples")] {
        let mut here: Vec<PathBuf> = std::fs::read_dir(&sub)
            .expect("rules dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()) == Some("toml"))
            .collect();
        here.sort();
        files.extend(here);
    }
    assert!(files.len() >= 8, "{files:?}");
    let out = std::process::Command::new(e2e::workspace_bin("gateway"))
        .arg("check")
        .args(&files)
        .current_dir(e2e::repo_root())
        .output()
        .expect("gateway runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gateway check exited {:?}\n{stdout}{stderr}", out.status.code());
    assert_eq!(stdout.lines().filter(|l| l.contains(": ok (")).count(), files.len(), "{stdout}");
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
    let ok = (1..=10)
        .filter(|i| {
            e.decide(&req("POST", CREATE, ip(&format!("2001:db8:7::{i}")), &UNDICI)).is_allowed()
        })
        .count();
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
        .filter(|i| {
            e.decide(&req("POST", CREATE, ip(&format!("2001:db8:0:{i}::1")), &UNDICI)).is_allowed()
        })
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
    assert!(
        !e.decide(&req("POST", CREATE, ip("203.0.113.3"), &curl)).is_allowed(),
        "address rotation does not help"
    );
    assert!(e.decide(&req("POST", CREATE, ip("203.0.113.3"), &UNDICI)).is_allowed());
}

fn check_combined(e: &Engine<FakeRelativeClock>) {
    let a = |s: &str| req("POST", CREATE, ip(s), &UNDICI);
    assert!(e.decide(&a("2001:db8:1:1::1")).is_allowed());
    assert!(e.decide(&a("2001:db8:1:2::1")).is_allowed());
    assert!(!e.decide(&a("2001:db8:1:3::1")).is_allowed(), "same /48, same client kind");
    assert!(e.decide(&a("2001:db8:2::1")).is_allowed(), "other /48");
    let curl = [("user-agent", "curl/8")];
    assert!(
        e.decide(&req("POST", CREATE, ip("2001:db8:1:4::1"), &curl)).is_allowed(),
        "other client kind"
    );
}

fn check_cloudflare(e: &Engine<FakeRelativeClock>) {
    let h =
        [("cf-connecting-ip", "198.51.100.20"), ("cf-ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1")];
    let d = e.decide(&req("POST", CREATE, ip("173.245.48.1"), &h));
    assert_eq!(d.client_ip, ip("198.51.100.20"));
    // Untrusted peer: header ignored.
    assert_eq!(e.decide(&req("POST", CREATE, ip("192.0.2.1"), &h)).client_ip, ip("192.0.2.1"));
    // Same TLS client from the same /24 via another edge address: burst 2 for prefix+tls_fp.
    let h2 =
        [("cf-connecting-ip", "198.51.100.21"), ("cf-ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1")];
    assert!(e.decide(&req("POST", CREATE, ip("173.245.48.2"), &h2)).is_allowed());
    let h3 =
        [("cf-connecting-ip", "198.51.100.22"), ("cf-ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1")];
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

// --- [accounts], [quotas], [costs], [budgets], [pow] ---

/// Invariants every shipped policy keeps, whatever its numbers.
fn check_sections_sound(name: &str, p: &Policy) {
    let q = p.quotas();
    assert!(
        q.max_d1_databases <= 1 && q.max_queues <= 10 && q.max_hyperdrive_configs <= 2,
        "{name}"
    );
    assert!(q.max_asset_files <= 1000 && q.max_asset_file_bytes <= 5 * 1024 * 1024, "{name}");
    assert!(
        q.max_body_bytes >= 50 * 1024 * 1024,
        "{name}: wrangler uploads assets in 50 MiB buckets"
    );
    assert!(p.pow().max_work <= 64_000_000, "{name}: wrangler refuses k*g above 64,000,000");
    // A challenge stays remembered at least as long as the slowest allowed solve.
    assert!(p.pow().challenge_ttl_secs >= 120, "{name}");
}

/// Charges `n` unclaimed one-script accounts from `from` at `at` and returns the source.
fn abandon(ledger: &Ledger, p: &Policy, from: &str, n: usize, at: u64) -> SourceKeys {
    let src = SourceKeys::new(ip(from), None, None);
    let held = ResourceCounts { worker_scripts: 1, ..Default::default() };
    for _ in 0..n {
        let id = format!("{from}-{}", ledger.len());
        ledger.charge_expired_unclaimed(&id, &src, held, at, p.costs()).expect("charged once");
    }
    src
}

/// How many one-script accounts a fresh source may abandon before each budget action.
fn abandoned_until(p: &Policy, from: &str) -> (usize, usize) {
    let ledger = Ledger::new();
    let (mut soft, mut n) = (None, 0);
    let src = SourceKeys::new(ip(from), None, None);
    loop {
        match ledger.over_budget(&src, 1000, p.budgets()).map(|b| b.action) {
            Some(BudgetAction::Refuse) => return (soft.expect("harder_pow comes first"), n),
            Some(BudgetAction::HarderPow) if soft.is_none() => soft = Some(n),
            _ => {}
        }
        abandon(&ledger, p, from, 1, 1000);
        n += 1;
        assert!(n < 1000, "no refuse budget");
    }
}

/// Live accounts one address may hold at once under the policy.
fn live_allowed(p: &Policy, from: &str) -> usize {
    let book = AccountBook::new();
    let hasher = TokenHasher::random();
    let src = SourceKeys::new(ip(from), None, None);
    let mut n = 0;
    while p.account_limits().check(&book, &src, 0).is_ok() {
        book.record_created(&format!("a{n}"), hasher.hash(&format!("t{n}")), 0, 3600, src.clone());
        n += 1;
        assert!(n < 1000, "unlimited");
    }
    let refusal = p.account_limits().check(&book, &src, 0).expect_err("refused");
    assert_eq!(refusal.limit_kind, AccountLimitKind::Live);
    assert!(refusal.retry_after_secs <= 3600, "a slot frees when the oldest account's hour ends");
    n
}

fn check_default_sections(p: &Policy) {
    assert_eq!(p.account_limits().window_secs, 86_400);
    assert_eq!(live_allowed(p, "198.51.100.7"), 3);
    assert_eq!(p.account_limits().per_day.get(&SourceKind::Ipv6_48), Some(&120));
    assert_eq!(p.quotas().max_queues, 10);
    assert_eq!(p.quotas().max_worker_scripts, 5);
    // An unclaimed one-script deploy is 15 units: harder_pow after 4, refused after 10.
    assert_eq!(
        p.costs().cleanup_cost(&ResourceCounts { worker_scripts: 1, ..Default::default() }),
        15
    );
    assert_eq!(abandoned_until(p, "198.51.100.7"), (4, 10));
    // A /48 gets 5x before being refused.
    assert_eq!(abandoned_until(p, "2001:db8:5::1").1, 10, "the /64 budget bites first");
    // At the harder_pow budget (60 units) a k=8 challenge becomes k=14.
    assert_eq!(p.pow().difficulty_for(60, 8, 4096), 14);
    // Capped at 32M hashes: with g = 4M only k' = 8 fits, never more.
    assert_eq!(p.pow().difficulty_for(100_000, 2, 4_000_000), 8);
    // A swarm spread over 1,000 /24s (one abandoned deploy each, 15 units per key) trips
    // no per-key budget but reaches the global one: everyone gets harder proof-of-work.
    let ledger = Ledger::new();
    for n in 0..1000 {
        abandon(&ledger, p, &format!("10.{}.{}.1", n / 256, n % 256), 1, 1000);
    }
    let newcomer = SourceKeys::new(ip("192.0.2.99"), None, None);
    let breach = ledger.over_budget(&newcomer, 1000, p.budgets()).expect("over the global budget");
    assert_eq!(
        (breach.key.to_string(), breach.action),
        ("global".to_string(), BudgetAction::HarderPow)
    );
    assert_eq!(breach.debt, 15_000);
}

fn check_strict_sections(p: &Policy) {
    assert_eq!(live_allowed(p, "198.51.100.7"), 1);
    assert_eq!(p.quotas().max_queues, 3);
    assert_eq!(abandoned_until(p, "198.51.100.7"), (2, 5));
    assert_eq!(p.pow().spot_checks, 8);
    assert_eq!(p.pow().max_work, 64_000_000);
    // A claim earns back exactly one abandoned deploy.
    let ledger = Ledger::new();
    let src = abandon(&ledger, p, "198.51.100.9", 5, 1000);
    assert!(ledger.over_budget(&src, 1000, p.budgets()).is_some());
    ledger
        .credit_claimed("claimed", &src, ResourceCounts::default(), 1000, p.costs())
        .expect("credited");
    assert_eq!(
        ledger.over_budget(&src, 1000, p.budgets()).map(|b| b.action),
        Some(BudgetAction::HarderPow)
    );
    // Platform-wide: harder at 5,000 units an hour, refused for everyone at 15,000.
    let global: Vec<(u64, BudgetAction)> =
        p.budgets().global.iter().map(|g| (g.units, g.action)).collect();
    assert_eq!(global, vec![(5_000, BudgetAction::HarderPow), (15_000, BudgetAction::Refuse)]);
}

fn check_budgets_example(p: &Policy) {
    assert_eq!(abandoned_until(p, "192.0.2.1"), (3, 8));
    // Debt ages out: a day later the same source is back to the platform's difficulty.
    let ledger = Ledger::new();
    let src = abandon(&ledger, p, "192.0.2.1", 8, 1000);
    let breach = ledger.over_budget(&src, 1000, p.budgets()).expect("over");
    assert_eq!(breach.action, BudgetAction::Refuse);
    assert!(breach.message.contains("claim"), "{}", breach.message);
    assert!(ledger.over_budget(&src, 1000 + 86_400, p.budgets()).is_none());
    assert_eq!(p.pow().difficulty_for(45, 8, 4096), 17, "k + 45 * 0.2");
    assert_eq!(p.pow().difficulty_for(10_000, 8, 4096), 32, "at most 4x");
}

fn check_quotas_example(p: &Policy) {
    let usage = AccountUsage::new();
    let d1 = classify("POST", "/client/v4/accounts/abc/d1/database");
    let refusal = usage.check(p.quotas(), &d1.op).expect_err("no D1");
    assert!(refusal.message.contains("D1 databases"), "{}", refusal.message);
    let mut usage = AccountUsage::new();
    let put = ResourceOp::Create { kind: ResourceKind::WorkerScript, name: Some("site".into()) };
    usage.check(p.quotas(), &put).expect("first Worker");
    usage.commit(&put, None);
    usage.check(p.quotas(), &put).expect("redeploying it is an update");
    let other = ResourceOp::Create { kind: ResourceKind::WorkerScript, name: Some("other".into()) };
    assert!(usage.check(p.quotas(), &other).is_err(), "one Worker per account");
    let upload = |files, max_file_size| ResourceOp::AssetUpload {
        script: "site".into(),
        manifest: Some(AssetManifest { files, max_file_size, total_bytes: files * max_file_size }),
    };
    assert!(usage.check(p.quotas(), &upload(500, 2 * 1024 * 1024)).is_ok());
    assert!(usage.check(p.quotas(), &upload(501, 1)).is_err());
    assert!(usage.check(p.quotas(), &upload(1, 2 * 1024 * 1024 + 1)).is_err());
}

#[test]
fn default_and_strict_limit_every_route_class() {
    let calls: [(&str, &str, policy::RouteClass); 6] = [
        ("POST", CHALLENGE, policy::RouteClass::ProvisionChallenge),
        ("POST", CREATE, policy::RouteClass::ProvisionCreate),
        ("GET", "/claim/some-secret", policy::RouteClass::Claim),
        ("PUT", "/client/v4/accounts/a/workers/scripts/s", policy::RouteClass::DeployWrite),
        ("GET", "/client/v4/accounts/a/workers/scripts", policy::RouteClass::DeployRead),
        ("GET", "/client/v4/user", policy::RouteClass::Other),
    ];
    for file in ["default.toml", "strict.toml"] {
        let p = compile_file(&rules_dir().join(file)).unwrap_or_else(|e| panic!("{e}"));
        let e = Engine::new(p);
        for (method, path, class) in calls {
            let req = Request {
                method,
                path,
                peer: "198.51.100.7".parse().expect("ip"),
                http_version: "HTTP/1.1",
                headers: &[],
                tls_fp: None,
                account: None,
            };
            let x = e.explain(&req);
            assert_eq!(x.route, Some(class), "{file}: {method} {path}");
            assert!(
                x.rules.iter().any(|r| r.action == policy::Action::Limit && !r.limits.is_empty()),
                "{file}: no limit applies to route {class}"
            );
        }
        assert!(
            !e.policy().client().is_trusted("127.0.0.1".parse().expect("ip")),
            "{file} trusts loopback"
        );
    }
}
