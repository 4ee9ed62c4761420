//! Temporary accounts through the real gateway binary: attribution, per-account
//! quotas, the cleanup-cost ledger fed by platform events, budgets, and adaptive
//! proof-of-work (with real wrangler solving a harder challenge).

use std::sync::Arc;
use std::time::Duration;

use e2e::{free_port, GatewayProcess, Wrangler, ADMIN_TOKEN};
use refplatform::pow::Challenge;
use refplatform::{EventsConfig, ManualClock, PlatformConfig};
use serde_json::{json, Value};

const SECRET: &str = "test-events-secret-0123456789";
/// The gateway's bearer at the platform's status API, apart from the events secret.
const STATUS_TOKEN: &str = "test-status-token-0123456789";
const BASE: &str = "/client/v4";

/// Platform + gateway with an admin listener the platform sends its events to.
struct Stack {
    platform: refplatform::RunningPlatform,
    clock: Arc<ManualClock>,
    gateway: GatewayProcess,
    admin: String,
    client: reqwest::Client,
}

async fn stack(policy: &str) -> Stack {
    let admin_port = free_port();
    let admin = format!("http://127.0.0.1:{admin_port}");
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig {
        pow_k: 4,
        pow_g: 256,
        events: Some(EventsConfig { url: format!("{admin}/events"), secret: SECRET.into() }),
        ..PlatformConfig::default()
    };
    let platform =
        refplatform::spawn(config, clock.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\nevents_secret = \"{SECRET}\"\nledger_file = \"ledger.jsonl\"\naccounts_file = \"accounts.jsonl\"\n",
        platform.addr()
    );
    let policy = policy.to_string();
    let gateway = GatewayProcess::start_with(&body, move |dir| {
        std::fs::write(dir.join("policy.toml"), policy).unwrap()
    });
    assert!(e2e::wait_listening(
        format!("127.0.0.1:{admin_port}").parse().unwrap(),
        Duration::from_secs(10)
    ));
    Stack { platform, clock, gateway, admin, client: reqwest::Client::new() }
}

/// An account created through the gateway by the real protocol.
struct Created {
    id: String,
    token: String,
    claim_url: String,
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("{}{BASE}{path}", self.gateway.url())
    }

    async fn challenge(&self, xff: &str) -> reqwest::Response {
        self.client
            .post(self.url("/provisioning/previews/challenge"))
            .header("x-forwarded-for", xff)
            .header("user-agent", "undici")
            .json(&json!({}))
            .send()
            .await
            .unwrap()
    }

    async fn create_with(&self, xff: &str, tamper: Option<usize>) -> reqwest::Response {
        let resp = self.challenge(xff).await;
        assert_eq!(resp.status(), 200, "challenge for {xff}");
        let v: Value = resp.json().await.unwrap();
        let challenge: Challenge = serde_json::from_value(v["result"].clone()).unwrap();
        let mut checkpoints = challenge.solve().unwrap();
        if let Some(i) = tamper {
            checkpoints[i][0] ^= 0xff;
        }
        self.client
            .post(self.url("/provisioning/previews"))
            .header("x-forwarded-for", xff)
            .header("user-agent", "undici")
            .json(&e2e::provision::create_body(&challenge.challenge_token, &checkpoints))
            .send()
            .await
            .unwrap()
    }

    async fn create(&self, xff: &str) -> Created {
        let resp = self.create_with(xff, None).await;
        assert_eq!(resp.status(), 200, "create for {xff}");
        let v: Value = resp.json().await.unwrap();
        Created {
            id: v["result"]["account"]["id"].as_str().unwrap().into(),
            token: v["result"]["account"]["apiToken"].as_str().unwrap().into(),
            claim_url: v["result"]["claim"]["url"].as_str().unwrap().into(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        acct: &Created,
        path: &str,
        xff: &str,
        body: Value,
    ) -> (u16, Value) {
        let resp = self
            .client
            .request(method, self.url(&format!("/accounts/{}{path}", acct.id)))
            .bearer_auth(&acct.token)
            .header("x-forwarded-for", xff)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn admin_get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The ledger's entries once every platform event sent so far has been delivered
    /// (the gateway applies an event before it answers it); at least `n` of them.
    async fn ledger_entries(&self, n: usize) -> Vec<Value> {
        self.platform.platform().events_settled().await;
        let entries =
            self.admin_get("/ledger/entries").await.as_array().cloned().unwrap_or_default();
        assert!(
            entries.len() >= n,
            "ledger has {} entries, expected {n}:\n{}",
            entries.len(),
            self.gateway.log_text()
        );
        entries
    }

    /// Moves the platform past the accounts' lifetime and runs its sweeper.
    fn expire_all(&self) -> Vec<refplatform::CleanupRecord> {
        self.clock.advance(Duration::from_secs(61 * 60));
        self.platform.platform().sweep()
    }
}

const LEDGER_POLICY: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
[costs]
account = 10
worker_script = 5
queue = 2
kv_namespace = 3
d1_database = 5
hyperdrive_config = 2
asset_file = 0
per_mb_stored = 1
claim_credit = 20
[budgets]
limit = []
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclaimed_cost_lands_on_its_creator_and_a_claim_earns_credit() {
    let s = stack(LEDGER_POLICY).await;
    let creator = "198.51.100.7";
    let elsewhere = "203.0.113.99";
    let unclaimed = s.create(creator).await;
    let claimed = s.create(creator).await;
    // Resources created from another address are still attributed to the creator.
    for i in 0..2 {
        let (status, _) = s
            .call(
                reqwest::Method::POST,
                &unclaimed,
                "/queues",
                elsewhere,
                json!({"queue_name": format!("q{i}")}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let claim = s
        .client
        .post(&claimed.claim_url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(claim.status().is_success(), "claim: {}", claim.status());

    let cleaned = s.expire_all();
    assert_eq!(cleaned.len(), 1, "only the unclaimed account is cleaned up");
    let entries = s.ledger_entries(2).await;
    let charge =
        entries.iter().find(|e| e["account_id"] == unclaimed.id.as_str()).expect("charge entry");
    let credit =
        entries.iter().find(|e| e["account_id"] == claimed.id.as_str()).expect("credit entry");
    // 10 per account + 2 queues x 2: the platform's own count of what it removed.
    assert_eq!(charge["units"], 14, "{charge}");
    // The ledger's charge is what the platform says its cleanup removed.
    let removed = &cleaned[0].removed;
    assert_eq!(charge["resources"]["queues"], removed.queues);
    assert_eq!(charge["resources"]["worker_scripts"], removed.scripts);
    assert_eq!(charge["resources"]["kv_namespaces"], removed.kv_namespaces);
    assert_eq!(charge["resources"]["d1_databases"], removed.d1_databases);
    assert_eq!(credit["units"], -20, "{credit}");
    let keys: Vec<&str> =
        charge["source_keys"].as_array().unwrap().iter().filter_map(|k| k.as_str()).collect();
    assert!(keys.contains(&"ip:198.51.100.7"), "{keys:?}");
    assert!(keys.contains(&"ipv4/24:198.51.100.0/24"), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k.contains("203.0.113")),
        "not charged to where the calls came from: {keys:?}"
    );

    // "Who left us the most cleanup last hour, and what did we do about it?"
    let top = s.admin_get("/ledger/top?n=5&since_secs=7200").await;
    assert!(top.as_array().unwrap().iter().any(|r| r["key"] == "ipv4/24:198.51.100.0/24"), "{top}");
    let cli = std::process::Command::new(e2e::workspace_bin("gateway"))
        .args(["ledger", "--since-secs", "7200", "--file"])
        .arg(s.gateway.dir.path().join("ledger.jsonl"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{text}");
    assert!(text.contains("ip:198.51.100.7"), "{text}");
    eprintln!("gateway ledger said:\n{text}");
    let one = std::process::Command::new(e2e::workspace_bin("gateway"))
        .args(["ledger", "--since-secs", "7200", "--source", "ip:198.51.100.7", "--file"])
        .arg(s.gateway.dir.path().join("ledger.jsonl"))
        .output()
        .unwrap();
    let one = String::from_utf8_lossy(&one.stdout);
    assert!(one.starts_with("ip:198.51.100.7: debt now 0, action now none"), "{one}");
    assert_eq!(one.lines().count(), 3, "one line per entry: {one}");

    // Secrets never reach the log or the ledger.
    let ledger_text = std::fs::read_to_string(s.gateway.dir.path().join("ledger.jsonl")).unwrap();
    let log = s.gateway.log_text();
    for secret in [&unclaimed.token, &claimed.token, &claimed.claim_url] {
        assert!(
            !ledger_text.contains(secret.as_str()) && !log.contains(secret.as_str()),
            "a secret leaked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_events_are_refused() {
    let s = stack(LEDGER_POLICY).await;
    let resp = s
        .client
        .post(format!("{}/events", s.admin))
        .header("x-platform-signature", "sha256=00")
        .body(r#"{"type":"claimed","account_id":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_account_quotas_refuse_the_11th_queue_and_the_1001st_asset() {
    let policy = format!("{LEDGER_POLICY}\n[quotas]\nmax_queues = 10\n");
    let s = stack(&policy).await;
    let ip = "198.51.100.20";
    let acct = s.create(ip).await;
    let mut first_id = None;
    for i in 0..10 {
        let (status, body) = s
            .call(
                reqwest::Method::POST,
                &acct,
                "/queues",
                ip,
                json!({"queue_name": format!("q{i}")}),
            )
            .await;
        assert_eq!(status, 200, "queue {i}: {body}");
        first_id.get_or_insert(body["result"]["queue_id"].as_str().unwrap_or_default().to_string());
    }
    let (status, body) =
        s.call(reqwest::Method::POST, &acct, "/queues", ip, json!({"queue_name": "q10"})).await;
    assert_eq!(status, 403, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("queues") && message.contains("10"), "{message}");
    assert_eq!(
        s.platform.platform().account(&acct.id).unwrap().counts.queues,
        10,
        "the 11th never reached the platform"
    );
    // Deleting one gives the quota back.
    let id = first_id.unwrap();
    let (status, _) =
        s.call(reqwest::Method::DELETE, &acct, &format!("/queues/{id}"), ip, Value::Null).await;
    assert_eq!(status, 200);
    let (status, _) =
        s.call(reqwest::Method::POST, &acct, "/queues", ip, json!({"queue_name": "again"})).await;
    assert_eq!(status, 200);

    let manifest = |n: usize| {
        let files: serde_json::Map<String, Value> = (0..n)
            .map(|i| (format!("/f{i}.txt"), json!({"hash": format!("{i:032x}"), "size": 10})))
            .collect();
        json!({ "manifest": files })
    };
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            &acct,
            "/workers/scripts/site/assets-upload-session",
            ip,
            manifest(1001),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("1000"), "{body}");
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            &acct,
            "/workers/scripts/site/assets-upload-session",
            ip,
            manifest(1000),
        )
        .await;
    assert_eq!(status, 200, "{body}\n{}", s.gateway.log_text());
}

fn budget_policy(action: &str) -> String {
    format!(
        "{}\n[[budgets.limit]]\nkey = \"ip\"\nunits = 1\naction = \"{action}\"\n\n[pow]\nextra_checkpoints_per_unit = 1.0\nmax_factor = 4\nspot_checks = 16\n",
        LEDGER_POLICY.replace("[budgets]\nlimit = []\n", "[budgets]\nwindow_secs = 86400\n")
    )
}

/// One unclaimed account from `ip`, expired and charged.
async fn run_up_debt(s: &Stack, ip: &str) {
    s.create(ip).await;
    assert_eq!(s.expire_all().len(), 1);
    s.ledger_entries(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_over_budget_is_refused_and_others_are_not() {
    let s = stack(&budget_policy("refuse")).await;
    run_up_debt(&s, "198.51.100.30").await;
    let refused = s.challenge("198.51.100.30").await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let v: Value = refused.json().await.unwrap();
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("cleanup"), "{v}");
    assert_eq!(s.challenge("192.0.2.44").await.status(), 200, "another source is unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_in_debt_gets_a_harder_challenge_and_tampering_is_caught() {
    let s = stack(&budget_policy("harder_pow")).await;
    let debtor = "198.51.100.40";
    run_up_debt(&s, debtor).await;
    let v: Value = s.challenge(debtor).await.json().await.unwrap();
    assert!(v["result"]["k"].as_u64().unwrap() > 4, "harder than the platform's k=4: {v}");
    let v: Value = s.challenge("192.0.2.45").await.json().await.unwrap();
    assert_eq!(v["result"]["k"], 4, "others get the platform's challenge");

    // An honest longer chain is accepted and the platform gets what it asked for.
    let before = s.platform.platform().accounts().len();
    s.create(debtor).await;
    assert_eq!(s.platform.platform().accounts().len(), before + 1);
    // A tampered extra checkpoint (past the platform's k) is refused by the gateway.
    let refused = s.create_with(debtor, Some(6)).await;
    assert_eq!(refused.status(), 403);
    let v: Value = refused.json().await.unwrap();
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("proof-of-work"), "{v}");
    assert_eq!(s.platform.platform().accounts().len(), before + 1, "never reached the platform");
    // The gateway's verification work is bounded: spot_checks (16) x g (256) per verify.
    let stats = s.admin_get("/stats").await;
    let (verifies, hashes) =
        (stats["pow"]["verifies"].as_u64().unwrap(), stats["pow"]["hashes"].as_u64().unwrap());
    assert!(verifies >= 1, "{stats}");
    assert!(hashes <= verifies * 16 * 256, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrangler_completes_a_deploy_through_a_raised_difficulty() {
    let s = stack(&budget_policy("harder_pow")).await;
    let debtor = "198.51.100.50";
    run_up_debt(&s, debtor).await;
    let wrangler = Wrangler::locate();
    let tmp = tempfile::tempdir().unwrap();
    let project = Wrangler::project(tmp.path(), "in-debt");
    let home = tmp.path().join("home");
    let api = format!("{}/client/v4", s.gateway.url());
    let headers = format!("{{\"X-Forwarded-For\": \"{debtor}\"}}");
    let run = tokio::task::spawn_blocking(move || {
        wrangler.deploy_temporary(
            &project,
            &home,
            &api,
            &[("CLOUDFLARE_API_HEADERS", headers.as_str())],
        )
    })
    .await
    .unwrap();
    assert!(run.ok(), "wrangler failed through a harder challenge:\n{}", run.text());
    assert!(run.text().contains(".workers.dev"));
    assert!(s.gateway.log_text().contains("proof-of-work made harder"), "{}", s.gateway.log_text());
}

/// Events lost (the platform's receiver URL is dead): the gateway's reconciliation
/// pass asks the platform's status API about accounts past their expiry, charges the
/// expired one with what the platform removed, and credits the claimed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_settles_accounts_whose_events_were_lost() {
    let admin_port = free_port();
    let admin = format!("http://127.0.0.1:{admin_port}");
    // The platform's clock runs two hours behind, so its accounts' expiry times are
    // already in the gateway's past: the gateway sees them as overdue at once.
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let clock = Arc::new(ManualClock::new(start));
    let dead = format!("http://127.0.0.1:{}/events", free_port());
    let config = PlatformConfig {
        pow_k: 4,
        pow_g: 256,
        events: Some(EventsConfig { url: dead, secret: SECRET.into() }),
        status_token: Some(STATUS_TOKEN.into()),
        ..PlatformConfig::default()
    };
    let platform =
        refplatform::spawn(config, clock.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let body = format!(
        "[upstream]\nurl = \"http://{p}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\nevents_secret = \"{SECRET}\"\nstatus_token = \"{STATUS_TOKEN}\"\nreconcile_url = \"http://{p}/internal/accounts\"\nreconcile_interval_secs = 3600\n",
        p = platform.addr()
    );
    let gateway = GatewayProcess::start_with(&body, |dir| {
        std::fs::write(dir.join("policy.toml"), LEDGER_POLICY).unwrap()
    });
    assert!(e2e::wait_listening(
        format!("127.0.0.1:{admin_port}").parse().unwrap(),
        Duration::from_secs(10)
    ));
    let s = Stack { platform, clock, gateway, admin, client: reqwest::Client::new() };

    let unclaimed = s.create("198.51.100.60").await;
    let claimed = s.create("198.51.100.60").await;
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            &unclaimed,
            "/queues",
            "198.51.100.60",
            json!({"queue_name": "lost"}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(s.client.post(&claimed.claim_url).send().await.unwrap().status().is_success());
    let cleaned = s.expire_all();
    assert_eq!(cleaned.len(), 1);

    let pass: Value = s
        .client
        .post(format!("{}/reconcile", s.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pass["overdue"], 2, "{pass}");
    assert_eq!(pass["settled"], 2, "{pass}");
    let entries = s.ledger_entries(2).await;
    let charge =
        entries.iter().find(|e| e["account_id"] == unclaimed.id.as_str()).expect("charged");
    assert_eq!(charge["units"], 12, "10 per account + one queue: {charge}");
    let credit = entries.iter().find(|e| e["account_id"] == claimed.id.as_str()).expect("credited");
    assert_eq!(credit["units"], -20);
    // A second pass finds nothing left to settle.
    let again: Value = s
        .client
        .post(format!("{}/reconcile", s.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["overdue"], 0, "{again}");
}

/// A swarm spread over many networks leaves too little debt on any one key, but the
/// platform-wide budget sees the total and refuses a newcomer from a fresh network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_spread_thin_is_held_by_the_global_budget() {
    let policy = LEDGER_POLICY.replace(
        "[budgets]\nlimit = []\n",
        "[budgets]\nlimit = []\n[[budgets.global]]\nunits = 20\naction = \"refuse\"\nwindow_secs = 3600\n",
    );
    let s = stack(&policy).await;
    s.create("198.51.100.70").await;
    s.create("203.0.113.70").await;
    assert_eq!(s.expire_all().len(), 2);
    s.ledger_entries(2).await;
    let refused = s.challenge("192.0.2.70").await;
    assert_eq!(
        refused.status(),
        429,
        "a fresh network is refused while the platform is over its budget"
    );
    let v: Value = refused.json().await.unwrap();
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("all sources together"), "{v}");
}

/// A restart does not forget who created the accounts still alive: their expiry after
/// the restart is charged to the creator, and their token still counts as theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_who_created_which_account() {
    let mut s = stack(LEDGER_POLICY).await;
    let acct = s.create("198.51.100.80").await;
    s.gateway.restart();
    // The token is still recognised: its resource calls count against the account.
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            &acct,
            "/queues",
            "203.0.113.80",
            json!({"queue_name": "after"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.expire_all().len(), 1);
    let entries = s.ledger_entries(1).await;
    let keys = entries[0]["source_keys"].to_string();
    assert!(keys.contains("ip:198.51.100.80"), "charged to the creator after a restart: {keys}");
    assert!(!std::fs::read_to_string(s.gateway.dir.path().join("accounts.jsonl"))
        .unwrap()
        .contains(&acct.token));
}
