//! Adaptive proof-of-work against a client that tries to dodge it, through the real
//! gateway binary: a refused solution sent again, a challenge fetched from a clean
//! address and redeemed from an indebted one, a token the gateway never saw, and a
//! tail of valid segments computed once and hung onto every challenge.
//!
//! Debt comes the real way: an account created from the debtor's address expires
//! unclaimed on the reference platform (its ManualClock moved past the lifetime), and
//! the platform's signed event charges it to the creator.

use std::sync::Arc;
use std::time::Duration;

use e2e::{free_port, GatewayProcess};
use refplatform::pow::{solve, Challenge, Checkpoint};
use refplatform::{EventsConfig, ManualClock, PlatformConfig};
use serde_json::{json, Value};

const SECRET: &str = "test-events-secret-0123456789";
const BASE: &str = "/client/v4";
/// The platform's own difficulty in these tests.
const K: u32 = 4;
const G: u32 = 256;
const DEBTOR: &str = "198.51.100.90";
const CLEAN: &str = "192.0.2.91";

/// One expired account costs 10 units; at 1 extra checkpoint per unit (capped at 4x)
/// the debtor owes k' = 14 (10 extra segments).
fn policy(spot_checks: u32) -> String {
    format!(
        r#"version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
[costs]
account = 10
[budgets]
window_secs = 86400
[[budgets.limit]]
key = "ip"
units = 1
action = "harder_pow"
[pow]
extra_checkpoints_per_unit = 1.0
max_factor = 4
spot_checks = {spot_checks}
"#
    )
}

struct Stack {
    platform: refplatform::RunningPlatform,
    clock: Arc<ManualClock>,
    gateway: GatewayProcess,
    client: reqwest::Client,
}

async fn stack(policy: String) -> Stack {
    let admin_port = free_port();
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig {
        pow_k: K,
        pow_g: G,
        events: Some(EventsConfig {
            url: format!("http://127.0.0.1:{admin_port}/events"),
            secret: SECRET.into(),
        }),
        ..PlatformConfig::default()
    };
    let platform =
        refplatform::spawn(config, clock.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\nevents_secret = \"{SECRET}\"\n",
        platform.addr()
    );
    let gateway = GatewayProcess::start_with(&body, move |dir| {
        std::fs::write(dir.join("policy.toml"), policy).unwrap()
    });
    assert!(e2e::wait_listening(
        format!("127.0.0.1:{admin_port}").parse().unwrap(),
        Duration::from_secs(10)
    ));
    Stack { platform, clock, gateway, client: reqwest::Client::new() }
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("{}{BASE}{path}", self.gateway.url())
    }

    /// A challenge fetched through the gateway from `xff`.
    async fn challenge(&self, xff: &str) -> Challenge {
        let resp = self
            .client
            .post(self.url("/provisioning/previews/challenge"))
            .header("x-forwarded-for", xff)
            .header("user-agent", "undici")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "challenge for {xff}");
        let v: Value = resp.json().await.unwrap();
        serde_json::from_value(v["result"].clone()).unwrap()
    }

    /// A challenge fetched from the platform directly, past the gateway.
    async fn challenge_past_the_gateway(&self) -> Challenge {
        let url = format!("http://{}{BASE}/provisioning/previews/challenge", self.platform.addr());
        let v: Value =
            self.client.post(url).json(&json!({})).send().await.unwrap().json().await.unwrap();
        serde_json::from_value(v["result"].clone()).unwrap()
    }

    /// The create body for `token` with `checkpoints`, as wrangler sends it.
    fn create_body(token: &str, checkpoints: &[Checkpoint]) -> Value {
        e2e::provision::create_body(token, checkpoints)
    }

    /// Sends a create body from `xff`: (status, answer).
    async fn create(&self, xff: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url("/provisioning/previews"))
            .header("x-forwarded-for", xff)
            .header("user-agent", "undici")
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn accounts(&self) -> usize {
        self.platform.platform().accounts().len()
    }

    /// One unclaimed account from `ip`, expired and charged to it.
    async fn run_up_debt(&self, ip: &str) {
        let ch = self.challenge(ip).await;
        let body = Self::create_body(&ch.challenge_token, &ch.solve().unwrap());
        let (status, v) = self.create(ip, &body).await;
        assert_eq!(status, 200, "{v}");
        self.clock.advance(Duration::from_secs(61 * 60));
        assert_eq!(self.platform.platform().sweep().len(), 1);
        self.platform.platform().events_settled().await;
        let owed = self.challenge(ip).await;
        assert_eq!(owed.k, 14, "the debtor owes 10 extra segments: {}", self.gateway.log_text());
    }
}

fn message(v: &Value) -> String {
    v["errors"][0]["message"].as_str().unwrap_or_default().to_string()
}

/// The attack: a short (base-work) solution to a harder challenge is refused; the very
/// same body sent again must be refused too, not forwarded as an unknown token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_solution_burns_its_token() {
    let s = stack(policy(4)).await;
    s.run_up_debt(DEBTOR).await;
    let ch = s.challenge(DEBTOR).await;
    assert_eq!(ch.k, 14);
    let base_work = solve(&ch.seed_bytes().unwrap(), K, G);
    let body = Stack::create_body(&ch.challenge_token, &base_work);
    let before = s.accounts();
    let (status, v) = s.create(DEBTOR, &body).await;
    assert_eq!(status, 403, "the short solution is refused: {v}");
    let (status, v) = s.create(DEBTOR, &body).await;
    assert_eq!(status, 403, "sent again, it is still refused: {v}");
    assert!(message(&v).contains("already used"), "{v}");
    assert!(message(&v).contains("Run the deploy again"), "{v}");
    // Even the right solution cannot revive a burned token.
    let full = Stack::create_body(&ch.challenge_token, &ch.solve().unwrap());
    let (status, v) = s.create(DEBTOR, &full).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(s.accounts(), before, "none of them reached the platform");
}

/// The attack: fetch the challenge from a clean address (base work), redeem it from
/// the indebted one. The create is judged at the stricter of the two difficulties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_redeemed_from_an_indebted_source_needs_its_work() {
    let s = stack(policy(4)).await;
    s.run_up_debt(DEBTOR).await;
    let before = s.accounts();
    let ch = s.challenge(CLEAN).await;
    assert_eq!(ch.k, K, "the clean address is asked the platform's work");
    let body = Stack::create_body(&ch.challenge_token, &ch.solve().unwrap());
    let (status, v) = s.create(DEBTOR, &body).await;
    assert_eq!(status, 403, "base work redeemed from the debtor is refused: {v}");
    assert!(message(&v).contains("expected 15 checkpoints"), "{v}");
    assert_eq!(s.accounts(), before);

    // With the debtor's work done, the clean address's challenge is accepted.
    let ch = s.challenge(CLEAN).await;
    let owed = solve(&ch.seed_bytes().unwrap(), 14, G);
    let (status, v) = s.create(DEBTOR, &Stack::create_body(&ch.challenge_token, &owed)).await;
    assert_eq!(status, 200, "{v}\n{}", s.gateway.log_text());
    assert_eq!(s.accounts(), before + 1);
    // The clean address itself still redeems its own challenge at the base work.
    let ch = s.challenge(CLEAN).await;
    let (status, v) =
        s.create(CLEAN, &Stack::create_body(&ch.challenge_token, &ch.solve().unwrap())).await;
    assert_eq!(status, 200, "{v}");
}

/// A chain of 10 valid segments computed once from a start of the forger's choosing.
fn precomputed_tail() -> Vec<Checkpoint> {
    // A chain solved once for a seed of the forger's own; its segments after the first
    // checkpoint are valid and fit any challenge of this length.
    solve(b"computed once, reused on every challenge", 10, G).split_off(1)
}

/// The attack: the platform's k segments done honestly, the 10 extra ones taken from a
/// tail precomputed once. Every extra segment but the first is valid, so spot checks
/// that skip the step from the client's checkpoint k miss it; the gateway must check
/// that step every time. Three tries, each on a new challenge: with one spot check of
/// the 10 extra segments, a gateway that does not always check it lets at least one
/// through 999 times in 1000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_precomputed_tail_is_refused() {
    let s = stack(policy(1)).await;
    s.run_up_debt(DEBTOR).await;
    let tail = precomputed_tail();
    let before = s.accounts();
    for attempt in 0..3 {
        let ch = s.challenge(DEBTOR).await;
        assert_eq!(ch.k, 14);
        let mut forged = solve(&ch.seed_bytes().unwrap(), K, G);
        forged.extend_from_slice(&tail);
        assert_eq!(forged.len(), 15);
        let (status, v) = s.create(DEBTOR, &Stack::create_body(&ch.challenge_token, &forged)).await;
        assert_eq!(status, 403, "attempt {attempt}: the forged tail was accepted: {v}");
        assert!(message(&v).contains("does not follow from checkpoint 4"), "{v}");
    }
    assert_eq!(s.accounts(), before, "no forged solution reached the platform");
    // The honest chain still passes with the same single spot check.
    let ch = s.challenge(DEBTOR).await;
    let (status, v) =
        s.create(DEBTOR, &Stack::create_body(&ch.challenge_token, &ch.solve().unwrap())).await;
    assert_eq!(status, 200, "{v}");
}

/// The attack: fetch a challenge from the platform directly (the gateway never rewrote
/// it) and redeem it from the indebted address with the platform's base work. A
/// source with no debt may still do that: the platform checks its own work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indebted_source_cannot_use_a_token_the_gateway_did_not_issue() {
    let s = stack(policy(4)).await;
    s.run_up_debt(DEBTOR).await;
    let before = s.accounts();
    let ch = s.challenge_past_the_gateway().await;
    assert_eq!(ch.k, K);
    let body = Stack::create_body(&ch.challenge_token, &ch.solve().unwrap());
    let (status, v) = s.create(DEBTOR, &body).await;
    assert_eq!(status, 403, "{v}");
    let text = message(&v);
    assert!(text.contains("not issued to your address"), "{v}");
    assert!(text.contains("Run the deploy again to get a new challenge"), "{v}");
    assert_eq!(s.accounts(), before, "never reached the platform");

    let ch = s.challenge_past_the_gateway().await;
    let body = Stack::create_body(&ch.challenge_token, &ch.solve().unwrap());
    let (status, v) = s.create(CLEAN, &body).await;
    assert_eq!(status, 200, "a source with no debt is forwarded as before: {v}");
}

/// The attack: the platform's k segments and the chaining step done honestly, then one
/// made-up checkpoint and behind it a chain of valid segments computed once, hung on
/// every challenge. One spot check of the nine segments after the chaining step misses
/// the made-up one 8 times in 9, so without more a forger gets most of its attempts
/// through; the gateway refuses any extra checkpoint it has seen in an earlier
/// solution, so the chain works at most once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_chain_behind_one_fake_checkpoint_works_at_most_once() {
    let s = stack(policy(1)).await;
    s.run_up_debt(DEBTOR).await;
    // cp[k+2..=k'] for k' = 14: nine checkpoints, the first of them made up.
    let reused = solve(b"made up once, reused on every challenge", 8, G);
    assert_eq!(reused.len(), 9);
    let before = s.accounts();
    let (mut refused_as_reused, mut mismatched) = (0, 0);
    for attempt in 0..8 {
        let ch = s.challenge(DEBTOR).await;
        assert_eq!(ch.k, 14);
        let mut forged = solve(&ch.seed_bytes().unwrap(), K + 1, G);
        forged.extend_from_slice(&reused);
        assert_eq!(forged.len(), 15);
        let (status, v) = s.create(DEBTOR, &Stack::create_body(&ch.challenge_token, &forged)).await;
        match status {
            403 if message(&v).contains("reuses work from an earlier one") => {
                refused_as_reused += 1
            }
            403 if message(&v).contains("does not follow from checkpoint") => mismatched += 1,
            _ => assert_eq!(status, 200, "attempt {attempt}: {v}"),
        }
    }
    let gained = s.accounts() - before;
    assert!(gained <= 1, "the reused chain got {gained} accounts");
    assert_eq!(refused_as_reused + mismatched + gained, 8);
    // Once one attempt got past the spot check, every later one was refused as reuse
    // unless its spot check caught the made-up checkpoint first.
    assert!(gained == 0 || refused_as_reused >= 1, "{refused_as_reused} refused as reused");
}
