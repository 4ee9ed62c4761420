//! Wide rotation through the real gateway binary: a client rotating through the /24s
//! of one IPv4 /16 is held by the /16's account limit, and a botnet spread over 100
//! /16s saturating the global creation ceiling does not lock honest newcomers out.
//! Client addresses come from `X-Forwarded-For` behind the trusted loopback proxy.

use e2e::ADMIN_TOKEN;
use std::sync::Arc;

use e2e::GatewayProcess;
use refplatform::{EventsConfig, ManualClock, PlatformConfig};

const BASE: &str = "/client/v4";
const SECRET: &str = "test-events-secret-0123456789";

/// Platform + gateway running `policy`.
struct Stack {
    platform: refplatform::RunningPlatform,
    gateway: GatewayProcess,
    client: reqwest::Client,
    admin: String,
}

async fn stack(policy: &str) -> Stack {
    let clock = Arc::new(ManualClock::starting_now());
    let admin_port = e2e::free_port();
    let events = EventsConfig {
        url: format!("http://127.0.0.1:{admin_port}/events"),
        secret: SECRET.into(),
    };
    let config =
        PlatformConfig { pow_k: 4, pow_g: 256, events: Some(events), ..PlatformConfig::default() };
    let platform =
        refplatform::spawn(config, clock, "127.0.0.1:0".parse().expect("addr")).await.expect("up");
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\nevents_secret = \"{SECRET}\"\n",
        platform.addr()
    );
    let policy = policy.to_string();
    let gateway = GatewayProcess::start_with(&body, move |dir| {
        std::fs::write(dir.join("policy.toml"), policy).expect("policy written")
    });
    let admin_addr = format!("127.0.0.1:{admin_port}");
    assert!(e2e::wait_listening(
        admin_addr.parse().expect("addr"),
        std::time::Duration::from_secs(10)
    ));
    let admin = format!("http://{admin_addr}");
    Stack { platform, gateway, client: reqwest::Client::new(), admin }
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("{}{BASE}{path}", self.gateway.url())
    }

    /// One account creation by the real protocol (challenge, solve, create) from
    /// `xff`; the status of the create call and its error message, if any.
    async fn create(&self, xff: &str) -> (u16, String) {
        let api = self.url("");
        let headers = [("x-forwarded-for", xff), ("user-agent", "undici")];
        let (status, v) = e2e::provision::create(&self.client, &api, &headers).await;
        let message = v["errors"][0]["message"].as_str().unwrap_or_default().to_string();
        let claim = v["result"]["claim"]["url"].as_str().map(str::to_string);
        (status, claim.unwrap_or(message))
    }
}

/// Account limits per /24 and per /16, no rate limits: what holds a rotator inside one
/// /16 is the /16's own limit.
const ROTATOR_POLICY: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
[accounts.live]
ip = 3
"ipv4/24" = 10
"ipv4/16" = 12
[accounts.per_day]
ip = 20
"ipv4/24" = 60
"ipv4/16" = 12
[budgets]
limit = []
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_rotator_gets_at_most_its_16_limit() {
    let s = stack(ROTATOR_POLICY).await;
    let mut created = 0;
    let mut last = String::new();
    // A fresh /24 (and address) of 10.77.0.0/16 for every account.
    for i in 0..40u32 {
        let (status, message) = s.create(&format!("10.77.{i}.{}", i + 1)).await;
        match status {
            200 => created += 1,
            429 => last = message,
            other => panic!("unexpected status {other}: {message}"),
        }
    }
    assert_eq!(created, 12, "the rotator got {created} accounts from one /16");
    assert!(last.contains("10.77.0.0/16"), "the refusal names the network: {last}");
    // Another /16 is untouched.
    assert_eq!(s.create("10.78.0.1").await.0, 200);
}

/// A small fair-share ceiling (200 accounts an hour, twice the botnet's networks, as
/// 2000/hour is twenty times the ~100 /16s of the swarm this reproduces) so the test
/// saturates it quickly; no per-network limits, so only the ceiling stands between the
/// botnet and everyone.
const CEILING_POLICY: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
[accounts.live]
ip = 3
[accounts.per_day]
ip = 20
[budgets]
limit = []
[fair_share]
ceiling = "200/hour"
share_above = 0.5
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_with_claimed_accounts_keeps_priority_in_a_swarm() {
    let s = stack(
        &CEILING_POLICY.replace("share_above = 0.5", "share_above = 0.5\nclaimed_weight = 4"),
    )
    .await;
    // Before the swarm: one source claims the account it made, another does not.
    let (status, claim_url) = s.create("100.50.1.1").await;
    assert_eq!(status, 200);
    let claim = s
        .client
        .post(&claim_url)
        .header("accept", "application/json")
        .send()
        .await
        .expect("claim sent");
    assert!(claim.status().is_success(), "claim: {}", claim.status());
    s.platform.platform().events_settled().await;
    assert_eq!(s.create("100.60.1.1").await.0, 200);
    // The swarm: 100 /16s, two rounds, fills the first-come half of the ceiling.
    for round in 0..2u32 {
        for net in 0..100u32 {
            s.create(&format!("20.{net}.{round}.1")).await;
        }
    }
    let (mut claimed, mut unclaimed) = (0, 0);
    for _ in 0..10 {
        claimed += u32::from(s.create("100.50.1.1").await.0 == 200);
        unclaimed += u32::from(s.create("100.60.1.1").await.0 == 200);
    }
    assert_eq!(unclaimed, 0, "a network that already had its share waits");
    assert!(claimed >= 3, "the claimer got {claimed} more under saturation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_botnet_cannot_lock_honest_newcomers_out() {
    let s = stack(CEILING_POLICY).await;
    let mut bot = 0;
    let mut refusal = String::new();
    // 100 /16s, four rounds each, a fresh address every time: 400 attempts, twice
    // the ceiling.
    for round in 0..4u32 {
        for net in 0..100u32 {
            let (status, message) = s.create(&format!("20.{net}.{round}.1")).await;
            match status {
                200 => bot += 1,
                429 => refusal = message,
                other => panic!("unexpected status {other}: {message}"),
            }
        }
    }
    assert!(bot <= 200, "the botnet got {bot} accounts past a ceiling of 200");
    assert!(bot <= 190, "the botnet took {bot} of 200, leaving no room for newcomers");
    assert!(refusal.contains("Retry in"), "the refusal says when: {refusal}");
    // Ten well-behaved agents from untouched /16s, one account each, during the swarm.
    let mut honest = 0;
    for agent in 0..10u32 {
        let (status, message) = s.create(&format!("100.{agent}.5.9")).await;
        assert_eq!(status, 200, "honest agent {agent} refused: {message}");
        honest += 1;
    }
    assert_eq!(honest, 10);
    // The swarm keeps going and is still held.
    let (status, _) = s.create("20.1.9.1").await;
    assert_eq!(status, 429, "a botnet /16 past its share stays refused");
    // What an operator watches.
    let metrics = s
        .client
        .get(format!("{}/metrics", s.admin))
        .bearer_auth(e2e::ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gateway_fair_share_refused_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no fair-share counter in:\n{metrics}"));
    assert_eq!(refused, 400 - bot + 1, "{metrics}");
    assert!(metrics.contains("gateway_fair_share_networks 110"), "{metrics}");
}

/// `rules/default.toml` on a fake clock: a /16 rotator is held by the /16's live
/// account limit, and through its rules and its `[fair_share]` ceiling a botnet over
/// 100 /16s hammering for an hour leaves honest newcomers from untouched /16s every
/// account they ask for.
#[test]
fn the_shipped_default_shares_its_ceiling_among_networks() {
    use policy::clock::FakeRelativeClock;
    use policy::{Engine, FairVerdict, Identity, Request};
    let path = e2e::repo_root().join("rules/default.toml");
    let p = policy::compile_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let clock = FakeRelativeClock::default();
    let e = Engine::with_clock(p, clock.clone());
    let create = |addr: &str| -> bool {
        let policy = e.current_policy();
        let peer = addr.parse().expect("address");
        let headers = [("user-agent", "undici")];
        let r = Request {
            method: "POST",
            path: "/client/v4/provisioning/previews",
            peer,
            http_version: "HTTP/1.1",
            headers: &headers,
            tls_fp: None,
            account: None,
        };
        let id = Identity::derive(&policy, r);
        e.decide_identified(&id).is_allowed()
            && !matches!(e.fair_share(&id, false), FairVerdict::Refuse { .. })
    };
    // One /16, a fresh /24 and address for every account, 200 tries within the hour.
    let book = policy::accounts::AccountBook::new();
    let hasher = policy::accounts::TokenHasher::random();
    let limits = e.current_policy().account_limits().clone();
    let mut rotator = 0;
    for i in 0..200u32 {
        let src = policy::accounts::SourceKeys::new(
            format!("198.18.{}.{}", i % 256, i / 256 + 1).parse().expect("address"),
            None,
            None,
        );
        if limits.check(&book, &src, 10).is_ok() {
            book.record_created(&format!("a{i}"), hasher.hash(&format!("t{i}")), 10, 3600, src);
            rotator += 1;
        }
    }
    assert_eq!(rotator, 60, "the /16 rotator holds at most the /16's 60 live accounts");
    // A botnet over 100 /16s (a fresh address per try) for an hour; newcomers arrive
    // from untouched /16s, two a minute, one account each.
    let (mut bot, mut honest, mut asked) = (0, 0, 0);
    for minute in 0..60u32 {
        for round in 0..5u32 {
            for net in 0..100u32 {
                let a = format!("{}.{}.{}.{}", 20 + net / 100, net % 100, minute, round + 1);
                bot += u32::from(create(&a));
            }
        }
        for agent in 0..2u32 {
            asked += 1;
            honest += u32::from(create(&format!(
                "{}.{}.1.1",
                150 + minute / 30,
                (minute % 30) * 2 + agent
            )));
        }
        clock.advance(std::time::Duration::from_secs(60));
    }
    assert!(honest * 100 >= asked * 99, "honest newcomers got {honest} of {asked}");
    assert!(bot + honest <= 2000, "the ceiling held: {bot} + {honest}");
}
