//! The embedded store (`[store] path`) through the real gateway binary: what a
//! restart, graceful or `kill -9`, must not forget: acknowledged accounts and who
//! created them, acknowledged ledger entries, resource counts, rate-limit state; the
//! one-time import of the old JSON-lines ledger and account journal; `gateway ledger`
//! reading the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::{free_port, GatewayProcess, ADMIN_TOKEN};
use refplatform::pow::Challenge;
use refplatform::{ManualClock, PlatformConfig};
use serde_json::{json, Value};

const SECRET: &str = "test-events-secret-0123456789";
const BASE: &str = "/client/v4";

const POLICY: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
[costs]
account = 10
queue = 2
claim_credit = 20
[budgets]
limit = []
[quotas]
max_queues = 2
"#;

/// The platform, and a gateway in front of it whose admin listener takes signed events
/// (the test signs and sends them itself, so it knows exactly which were acknowledged).
struct Stack {
    platform: refplatform::RunningPlatform,
    gateway: GatewayProcess,
    admin: String,
    client: reqwest::Client,
}

/// `[store]` and `[admin]` sections, with `extra_admin` lines added to `[admin]`.
fn config(platform: &refplatform::RunningPlatform, admin_port: u16, store: &str) -> String {
    format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\nevents_secret = \"{SECRET}\"\n{store}",
        platform.addr()
    )
}

async fn platform() -> refplatform::RunningPlatform {
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig { pow_k: 4, pow_g: 256, ..PlatformConfig::default() };
    refplatform::spawn(config, clock, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

async fn stack_with(policy: &str, sections: &str) -> Stack {
    let platform = platform().await;
    let admin_port = free_port();
    let body = config(&platform, admin_port, sections);
    let policy = policy.to_string();
    let gateway = GatewayProcess::start_with(&body, move |dir| {
        std::fs::write(dir.join("policy.toml"), policy).unwrap()
    });
    let s = Stack {
        platform,
        gateway,
        admin: format!("http://127.0.0.1:{admin_port}"),
        client: reqwest::Client::new(),
    };
    s.wait_admin();
    s
}

async fn stack(policy: &str) -> Stack {
    stack_with(policy, "\n[store]\npath = \"state.db\"\nsnapshot_secs = 1\n").await
}

/// An account the gateway answered a create for.
#[derive(Clone, Debug)]
struct Created {
    id: String,
    token: String,
    creator: String,
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("{}{BASE}{path}", self.gateway.url())
    }

    fn wait_admin(&self) {
        let addr = self.admin.trim_start_matches("http://").parse().unwrap();
        assert!(e2e::wait_listening(addr, Duration::from_secs(10)), "admin listener");
    }

    async fn challenge(&self, ip: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.client
            .post(self.url("/provisioning/previews/challenge"))
            .header("x-forwarded-for", ip)
            .json(&json!({}))
            .send()
            .await
    }

    /// Creates an account by the real protocol; `None` when the gateway did not answer
    /// (it was killed meanwhile) or refused.
    async fn try_create(&self, ip: &str) -> Option<Created> {
        let resp = self.challenge(ip).await.ok()?;
        if resp.status() != 200 {
            return None;
        }
        let v: Value = resp.json().await.ok()?;
        let challenge: Challenge = serde_json::from_value(v["result"].clone()).ok()?;
        let checkpoints = challenge.solve().ok()?;
        let resp = self
            .client
            .post(self.url("/provisioning/previews"))
            .header("x-forwarded-for", ip)
            .json(&e2e::provision::create_body(&challenge.challenge_token, &checkpoints))
            .send()
            .await
            .ok()?;
        if resp.status() != 200 {
            return None;
        }
        // Acknowledged only once the whole answer, with the token, has arrived.
        let v: Value = resp.json().await.ok()?;
        Some(Created {
            id: v["result"]["account"]["id"].as_str()?.into(),
            token: v["result"]["account"]["apiToken"].as_str()?.into(),
            creator: ip.into(),
        })
    }

    async fn create(&self, ip: &str) -> Created {
        self.try_create(ip).await.expect("account created")
    }

    async fn queue(&self, acct: &Created, name: &str) -> u16 {
        let resp = self
            .client
            .post(self.url(&format!("/accounts/{}/queues", acct.id)))
            .bearer_auth(&acct.token)
            .header("x-forwarded-for", &acct.creator)
            .json(&json!({ "queue_name": name }))
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    }

    /// Sends a signed platform event; the ledger entry when the gateway answered 2xx.
    async fn event(&self, kind: &str, account: &str) -> Option<Value> {
        let body = json!({ "type": kind, "account_id": account }).to_string();
        let resp = self
            .client
            .post(format!("{}/events", self.admin))
            .header(
                refplatform::SIGNATURE_HEADER,
                refplatform::events::sign(SECRET, body.as_bytes()),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let v: Value = resp.json().await.ok()?;
        Some(v["ledger_entry"].clone())
    }

    async fn ledger_entries(&self) -> Vec<Value> {
        let v: Value = self
            .client
            .get(format!("{}/ledger/entries", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().cloned().unwrap_or_default()
    }
}

const BURST_3: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
[[rule]]
name = "challenge-per-ip"
match = { route = "provision-challenge" }
action = "limit"
limits = [{ key = "ip", rate = "1/hour", burst = 3 }]
"#;

async fn use_up_the_burst(s: &Stack, ip: &str) {
    for i in 0..3 {
        assert_eq!(s.challenge(ip).await.unwrap().status(), 200, "request {i} within the burst");
    }
    assert_eq!(s.challenge(ip).await.unwrap().status(), 429, "past the burst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_used_up_its_rate_limit_is_still_limited_after_a_restart() {
    let mut s = stack(BURST_3).await;
    use_up_the_burst(&s, "198.51.100.1").await;
    s.gateway.restart();
    s.wait_admin();
    assert_eq!(
        s.challenge("198.51.100.1").await.unwrap().status(),
        429,
        "a graceful restart hands no fresh burst:\n{}",
        s.gateway.log_text()
    );
    assert_eq!(s.challenge("198.51.100.2").await.unwrap().status(), 200, "others unaffected");
}

/// The highest snapshot number the gateway logged so far.
fn last_snapshot(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.split("rate-limit snapshot ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_survives_kill_9_once_a_periodic_snapshot_has_run() {
    let mut s = stack(BURST_3).await;
    use_up_the_burst(&s, "198.51.100.3").await;
    // Two snapshots later, one certainly began after the burst was used up.
    let n = last_snapshot(&s.gateway.log_text());
    s.gateway.wait_for_log(&format!("rate-limit snapshot {} ", n + 2));
    s.gateway.crash_and_restart();
    s.wait_admin();
    assert_eq!(s.challenge("198.51.100.3").await.unwrap().status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_limit_starts_afresh_after_a_restart() {
    let mut s = stack(BURST_3).await;
    use_up_the_burst(&s, "198.51.100.4").await;
    std::fs::write(
        s.gateway.dir.path().join("policy.toml"),
        BURST_3.replace("burst = 3", "burst = 4"),
    )
    .unwrap();
    s.gateway.restart();
    s.wait_admin();
    assert_eq!(
        s.challenge("198.51.100.4").await.unwrap().status(),
        200,
        "a new limit, new counters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_account_or_ledger_entry() {
    let s = stack(POLICY).await;
    let s = Arc::new(tokio::sync::RwLock::new(s));
    let created: Arc<Mutex<Vec<Created>>> = Arc::default();
    let evented: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (enough_tx, mut enough_rx) = tokio::sync::watch::channel(0usize);
    let mut tasks = Vec::new();
    // Four creators, at most 12 accounts each, each from an address of its own.
    for worker in 0..4 {
        let (s, created, enough) = (s.clone(), created.clone(), enough_tx.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..12 {
                let ip = format!("198.51.{}.{}", 100 + worker, 10 + i);
                let Some(acct) = s.read().await.try_create(&ip).await else { return };
                let n = {
                    let mut c = created.lock().unwrap();
                    c.push(acct);
                    c.len()
                };
                enough.send_replace(n);
            }
        }));
    }
    // Events for every third account created so far, while the creators run.
    {
        let (s, created, evented) = (s.clone(), created.clone(), evented.clone());
        let mut changed = enough_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while changed.changed().await.is_ok() {
                let todo: Vec<Created> =
                    created.lock().unwrap().iter().skip(sent).cloned().collect();
                for acct in todo {
                    sent += 1;
                    if sent % 3 != 0 {
                        continue;
                    }
                    let Some(entry) = s.read().await.event("deleted", &acct.id).await else {
                        return;
                    };
                    assert_eq!(entry["account_id"], acct.id.as_str());
                    evented.lock().unwrap().push((acct.id.clone(), acct.creator.clone()));
                }
            }
        }));
    }
    drop(enough_tx);
    // Kill while creations and events are in flight.
    enough_rx.wait_for(|n| *n >= 16).await.unwrap();
    {
        // Only readers hold the stack; the kill itself needs no lock on the requests.
        let s = s.read().await;
        s.gateway.signal("KILL");
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut s = Arc::try_unwrap(s).ok().expect("tasks done").into_inner();
    assert!(s.gateway.wait_exit(Duration::from_secs(10)).is_some());
    s.gateway.start_again();
    s.wait_admin();

    let created = created.lock().unwrap().clone();
    let evented = evented.lock().unwrap().clone();
    assert!(created.len() >= 16 && !evented.is_empty(), "{} {}", created.len(), evented.len());
    eprintln!("acknowledged before the kill: {} accounts, {} events", created.len(), evented.len());
    // Every acknowledged ledger entry is there, once.
    let entries = s.ledger_entries().await;
    for (id, creator) in &evented {
        let mine: Vec<&Value> = entries.iter().filter(|e| e["account_id"] == id.as_str()).collect();
        assert_eq!(mine.len(), 1, "entry of {id}:\n{}", s.gateway.log_text());
        let keys = mine[0]["source_keys"].to_string();
        assert!(keys.contains(&format!("ip:{creator}")), "{keys}");
    }
    // Every other acknowledged account is still known: its token is quota-checked and
    // its cleanup is charged to its creator.
    let evented_ids: Vec<&String> = evented.iter().map(|(id, _)| id).collect();
    for acct in created.iter().filter(|a| !evented_ids.contains(&&a.id)) {
        assert_eq!(s.queue(acct, "a").await, 200);
        assert_eq!(s.queue(acct, "b").await, 200);
        assert_eq!(s.queue(acct, "c").await, 403, "{} is still quota-checked", acct.id);
        let entry = s.event("deleted", &acct.id).await.expect("known account");
        assert!(entry["source_keys"].to_string().contains(&format!("ip:{}", acct.creator)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_at_its_quota_stays_refused_after_kill_9() {
    let mut s = stack(POLICY).await;
    let acct = s.create("198.51.100.60").await;
    assert_eq!(s.queue(&acct, "q1").await, 200);
    assert_eq!(s.queue(&acct, "q2").await, 200);
    assert_eq!(s.queue(&acct, "q3").await, 403);
    s.gateway.crash_and_restart();
    s.wait_admin();
    assert_eq!(s.queue(&acct, "q3").await, 403, "quotas do not restart from zero");
    assert_eq!(s.platform.platform().account(&acct.id).unwrap().counts.queues, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_ledger_and_journal_are_imported_into_a_new_store_once() {
    let old = "ledger_file = \"ledger.jsonl\"\naccounts_file = \"accounts.jsonl\"\n";
    let mut s = stack_with(POLICY, old).await;
    let charged = s.create("198.51.100.70").await;
    let live = s.create("198.51.100.71").await;
    assert_eq!(s.queue(&live, "q1").await, 200);
    s.event("deleted", &charged.id).await.expect("charged");
    // The same files, now with a store.
    let path = s.gateway.dir.path().join("gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n[store]\npath = \"state.db\"\nsnapshot_secs = 1\n"))
        .unwrap();
    for round in 0..2 {
        s.gateway.restart();
        s.wait_admin();
        let entries = s.ledger_entries().await;
        assert_eq!(entries.len(), 1, "round {round}: imported once: {entries:?}");
        assert_eq!(entries[0]["account_id"], charged.id.as_str());
    }
    assert!(s.gateway.log_text().contains("imported into the store"), "{}", s.gateway.log_text());
    // The journal's account is attributed and quota-checked with the journal's key.
    let entry = s.event("deleted", &live.id).await.expect("known after the import");
    assert!(entry["source_keys"].to_string().contains("ip:198.51.100.71"), "{entry}");

    // `gateway ledger` reads the store.
    let cli = std::process::Command::new(e2e::workspace_bin("gateway"))
        .args(["ledger", "--since-secs", "7200", "--store"])
        .arg(s.gateway.dir.path().join("state.db"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{out}{}", String::from_utf8_lossy(&cli.stderr));
    assert!(out.contains("ip:198.51.100.70") && out.contains("ip:198.51.100.71"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filled_fair_share_ceiling_stays_filled_after_a_restart() {
    let policy = format!("{POLICY}\n[fair_share]\nceiling = \"2/hour\"\n");
    let mut s = stack(&policy).await;
    s.create("198.51.100.80").await;
    s.create("203.0.113.80").await;
    assert!(s.try_create("192.0.2.80").await.is_none(), "the ceiling is reached");
    s.gateway.restart();
    s.wait_admin();
    assert!(
        s.try_create("192.0.2.81").await.is_none(),
        "a restart does not reopen the ceiling:\n{}",
        s.gateway.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_block_survives_a_restart_and_its_lifting_too() {
    let mut s = stack(BURST_3).await;
    let block = |target: &str| {
        s.client
            .post(format!("{}/operator/blocks", s.admin))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"target": target, "reason": "claim-URL guessing", "ttl_secs": 3600}))
            .send()
    };
    assert_eq!(block("198.51.100.0/24").await.unwrap().status(), 201);
    assert_eq!(block("203.0.113.9").await.unwrap().status(), 201);
    let lifted = s
        .client
        .delete(format!("{}/operator/blocks?target=203.0.113.9", s.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(lifted.status(), 200);
    s.gateway.crash_and_restart();
    s.wait_admin();
    let refused = s.challenge("198.51.100.7").await.unwrap();
    assert_eq!(refused.status(), 403, "the block is back after kill -9:\n{}", s.gateway.log_text());
    assert!(refused.text().await.unwrap().contains("claim-URL guessing"));
    assert_eq!(
        s.challenge("203.0.113.9").await.unwrap().status(),
        200,
        "a lifted block stays lifted"
    );
}
