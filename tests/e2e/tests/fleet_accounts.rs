//! Account state shared by a fleet of gateways through Redis: two real gateway
//! binaries in front of one reference platform, each with `[store] redis`, and a
//! `redis-server` of the test's own. An account made through one gateway is known,
//! limited and charged through the other; quota slots are reserved atomically across
//! the fleet; a gateway killed with SIGKILL comes back with the fleet's state; a dead
//! Redis stops only the calls that need it.

use e2e::ADMIN_TOKEN;
use std::sync::Arc;
use std::time::Duration;

use e2e::redis::{RedisCluster, RedisServer};
use e2e::{free_port, GatewayProcess};
use refplatform::{EventsConfig, ManualClock, PlatformConfig};
use serde_json::{json, Value};

const SECRET: &str = "fleet-events-secret-0123456789";
const BASE: &str = "/client/v4";

/// One live account per address; two KV namespaces and two asset files per account; an
/// address that left
/// one account unclaimed (10 units) is over its budget of 1 and refused.
const POLICY: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
[accounts.live]
ip = 1
[quotas]
max_kv_namespaces = 2
max_asset_files = 2
[costs]
account = 10
kv_namespace = 3
claim_credit = 20
[budgets]
window_secs = 86400
[[budgets.limit]]
key = "ip"
units = 1
action = "refuse"
"#;

/// One gateway of the fleet and its admin listener.
struct Member {
    gateway: GatewayProcess,
    admin: String,
}

/// The platform, the fleet's Redis and two gateways; the platform's events go to B.
struct Fleet {
    platform: refplatform::RunningPlatform,
    clock: Arc<ManualClock>,
    /// The single Redis (`None` on a cluster).
    redis: Option<RedisServer>,
    a: Member,
    b: Member,
    client: reqwest::Client,
}

/// An account created through a gateway.
struct Created {
    id: String,
    token: String,
    claim_url: String,
}

/// `store` is the `[store] redis` value as written (a quoted URL or a list).
fn member(platform: &refplatform::RunningPlatform, store: &str, admin_port: u16) -> Member {
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\nevents_secret = \"{SECRET}\"\n\n[store]\nredis = {store}\n",
        platform.addr(),
    );
    let gateway = GatewayProcess::start_with(&body, |dir| {
        std::fs::write(dir.join("policy.toml"), POLICY).unwrap()
    });
    assert!(e2e::wait_listening(
        format!("127.0.0.1:{admin_port}").parse().unwrap(),
        Duration::from_secs(10)
    ));
    Member { gateway, admin: format!("http://127.0.0.1:{admin_port}") }
}

async fn fleet() -> Fleet {
    let redis = RedisServer::start();
    let store = format!("\"{}\"", redis.url());
    let (platform, clock, a, b) = members(&store).await;
    Fleet { platform, clock, redis: Some(redis), a, b, client: reqwest::Client::new() }
}

/// The platform (its events going to B) and the two gateways on `store`.
async fn members(store: &str) -> (refplatform::RunningPlatform, Arc<ManualClock>, Member, Member) {
    let (admin_a, admin_b) = (free_port(), free_port());
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig {
        pow_k: 2,
        pow_g: 64,
        events: Some(EventsConfig {
            url: format!("http://127.0.0.1:{admin_b}/events"),
            secret: SECRET.into(),
        }),
        ..PlatformConfig::default()
    };
    let platform =
        refplatform::spawn(config, clock.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let a = member(&platform, store, admin_a);
    let b = member(&platform, store, admin_b);
    (platform, clock, a, b)
}

impl Member {
    fn url(&self, path: &str) -> String {
        format!("{}{BASE}{path}", self.gateway.url())
    }
}

impl Fleet {
    fn redis(&mut self) -> &mut RedisServer {
        self.redis.as_mut().expect("a single Redis")
    }

    async fn create(&self, via: &Member, ip: &str) -> Created {
        let api = via.url("");
        let (status, v) =
            e2e::provision::create(&self.client, &api, &[("x-forwarded-for", ip)]).await;
        assert_eq!(status, 200, "create: {v}\n{}", via.gateway.log_text());
        Created {
            id: v["result"]["account"]["id"].as_str().expect("account id").into(),
            token: v["result"]["account"]["apiToken"].as_str().expect("token").into(),
            claim_url: v["result"]["claim"]["url"].as_str().expect("claim url").into(),
        }
    }

    async fn kv(&self, via: &Member, acct: &Created, title: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(via.url(&format!("/accounts/{}/storage/kv/namespaces", acct.id)))
            .bearer_auth(&acct.token)
            .header("x-forwarded-for", "203.0.113.5")
            .json(&json!({ "title": title }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn challenge(&self, via: &Member, ip: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(via.url("/provisioning/previews/challenge"))
            .header("x-forwarded-for", ip)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn admin_get(&self, m: &Member, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", m.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn kv_held(&self, acct: &Created) -> u64 {
        self.platform.platform().account(&acct.id).expect("platform account").counts.kv_namespaces
    }

    /// Moves the platform past the accounts' lifetime, sweeps, and waits until B has
    /// answered every event.
    async fn expire_all(&self) -> usize {
        self.clock.advance(Duration::from_secs(61 * 60));
        let n = self.platform.platform().sweep().len();
        self.platform.platform().events_settled().await;
        n
    }

    /// Polls (bounded: 200 x 25 ms) until `m`'s ledger holds `n` entries.
    async fn wait_ledger(&self, m: &Member, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let entries = self.admin_get(m, "/ledger/entries").await;
            let entries = entries.as_array().cloned().unwrap_or_default();
            if entries.len() >= n {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("ledger of {} never held {n} entries:\n{}", m.admin, m.gateway.log_text());
    }
}

/// A client takes the token it got from A straight to B: B knows the account, limits
/// it and counts its quota together with what A counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_made_through_a_is_attributed_and_quota_checked_through_b() {
    let f = fleet().await;
    let acct = f.create(&f.a, "198.51.100.10").await;
    let (status, body) = f.kv(&f.a, &acct, "one").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = f.kv(&f.b, &acct, "two").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = f.kv(&f.b, &acct, "three").await;
    assert_eq!(status, 403, "B counts what A created: {body}\n{}", f.b.gateway.log_text());
    assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("kv_namespaces"));
    let (status, _) = f.kv(&f.a, &acct, "four").await;
    assert_eq!(status, 403, "A counts what B created");
    assert_eq!(f.kv_held(&acct), 2, "the platform holds no more than the quota");
    // B attributes the calls to the account (its access log names it, never the token).
    let log = f.b.gateway.log_text();
    assert!(log.contains(&acct.id), "B names the account in its log");
    assert!(!log.contains(&acct.token) && !f.a.gateway.log_text().contains(&acct.token));
    let stored = f.redis.as_ref().expect("a single Redis").cli(&["--scan", "--count", "1000"]);
    assert!(!stored.contains(&acct.token), "no token in Redis");
}

/// The account book is the fleet's: an address with a live account made through A is
/// at its limit on B too, and once the account is claimed (the platform tells B) A lets
/// the address create another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_limits_and_lifecycle_are_shared() {
    let f = fleet().await;
    let ip = "198.51.100.19";
    let acct = f.create(&f.a, ip).await;
    let mut known = false;
    for _ in 0..200 {
        if f.admin_get(&f.b, "/stats").await["accounts_tracked"].as_u64() >= Some(1) {
            known = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(known, "B never learnt A's account from the log");
    let (status, body) =
        e2e::provision::create(&f.client, &f.b.url(""), &[("x-forwarded-for", ip)]).await;
    assert_eq!(status, 429, "one live account per address, fleet-wide: {body}");
    let claim =
        f.client.post(&acct.claim_url).header("accept", "application/json").send().await.unwrap();
    assert!(claim.status().is_success(), "claim: {}", claim.status());
    f.platform.platform().events_settled().await;
    let entries = f.wait_ledger(&f.a, 1).await;
    assert_eq!(entries[0]["reason"], "claimed", "{entries:?}");
    f.create(&f.a, ip).await;
}

/// A and B race for an account's last KV namespace slot: exactly one create passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_racing_for_the_last_slot_admit_one() {
    let f = Arc::new(fleet().await);
    let acct = Arc::new(f.create(&f.a, "198.51.100.11").await);
    let (status, _) = f.kv(&f.a, &acct, "first").await;
    assert_eq!(status, 200);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (f, acct) = (f.clone(), acct.clone());
        tasks.spawn(async move {
            let via = if i % 2 == 0 { &f.a } else { &f.b };
            f.kv(via, &acct, &format!("race{i}")).await.0
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 7, "{statuses:?}");
    assert_eq!(f.kv_held(&acct), 2);
}

/// The platform tells B that an account made through A expired unclaimed: B charges the
/// creator, and A, which never saw the event, then refuses the creator's next challenge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_delivered_to_b_charges_the_creator_made_through_a() {
    let f = fleet().await;
    let creator = "198.51.100.12";
    f.create(&f.a, creator).await;
    assert_eq!(f.challenge(&f.a, creator).await.0, 200, "no debt yet");
    assert_eq!(f.expire_all().await, 1);
    let entries = f.wait_ledger(&f.b, 1).await;
    assert_eq!(entries[0]["units"], 10, "{entries:?}");
    assert!(entries[0]["source_keys"].to_string().contains(&format!("ip:{creator}")));
    f.wait_ledger(&f.a, 1).await;
    let (status, body) = f.challenge(&f.a, creator).await;
    assert_eq!(status, 429, "A's budget check sees B's charge: {body}");
    assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("cleanup"));
    assert_eq!(f.challenge(&f.a, "192.0.2.40").await.0, 200, "another source is unaffected");
}

/// A gateway killed with SIGKILL comes back knowing the fleet's accounts (the token is
/// still attributed and its quota still counted) and the whole ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_restarts_with_accounts_quotas_and_ledger_from_redis() {
    let mut f = fleet().await;
    let charged = "198.51.100.13";
    f.create(&f.a, charged).await;
    assert_eq!(f.expire_all().await, 1);
    f.wait_ledger(&f.a, 1).await;
    let acct = f.create(&f.a, "198.51.100.14").await;
    for title in ["x", "y"] {
        assert_eq!(f.kv(&f.a, &acct, title).await.0, 200);
    }
    f.a.gateway.crash_and_restart();
    let stats = f.admin_get(&f.a, "/stats").await;
    assert!(stats["accounts_tracked"].as_u64() >= Some(2), "accounts replayed: {stats}");
    assert_eq!(stats["ledger"]["entries"], 1, "ledger replayed: {stats}");
    let (status, body) = f.kv(&f.a, &acct, "z").await;
    assert_eq!(status, 403, "the quota still counts both namespaces: {body}");
    assert_eq!(f.challenge(&f.a, charged).await.0, 429, "the budget still counts the charge");
    assert_eq!(f.kv_held(&acct), 2);
}

/// Redis dies: calls that need no store go on; a quota reservation is refused with a
/// 503 that says why; once Redis is back, reservations work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_stops_only_what_needs_it_and_recovers() {
    let mut f = fleet().await;
    let acct = f.create(&f.a, "198.51.100.15").await;
    f.redis().kill();
    let (status, body) = f.challenge(&f.a, "198.51.100.16").await;
    assert_eq!(status, 200, "a request with no account flows: {body}");
    let (status, body) = f.kv(&f.a, &acct, "down").await;
    assert_eq!(status, 503, "a quota reservation cannot be made: {body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("store"), "{message}");
    assert_eq!(f.kv_held(&acct), 0, "nothing reached the platform");
    f.redis().restart();
    let mut last = (0, Value::Null);
    for _ in 0..200 {
        last = f.kv(&f.a, &acct, "up").await;
        if last.0 != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(last.0, 200, "reservations work again once Redis is back: {}", last.1);
    // B notices on its own (its reconnection backs off on its own schedule).
    let mut up = false;
    for _ in 0..200 {
        if f.admin_get(&f.b, "/stats").await["fleet"]["up"] == true {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "B never saw Redis back:\n{}", f.b.gateway.log_text());
    // A fresh account made after the outage is known fleet-wide again.
    let later = f.create(&f.a, "198.51.100.17").await;
    assert_eq!(f.kv(&f.b, &later, "b").await.0, 200);
    let stats = f.admin_get(&f.b, "/stats").await;
    assert!(stats["accounts_tracked"].as_u64() >= Some(1), "{stats}");
}

/// The same sharing on a Redis Cluster of three masters: the account map, the counters
/// (one hash slot per account) and the log work across nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_shares_accounts_and_quotas() {
    let cluster = RedisCluster::start(3);
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let (platform, clock, a, b) = members(&format!("[{}]", urls.join(", "))).await;
    let f = Fleet { platform, clock, redis: None, a, b, client: reqwest::Client::new() };
    let acct = f.create(&f.a, "198.51.100.18").await;
    assert_eq!(f.kv(&f.b, &acct, "one").await.0, 200, "{}", f.b.gateway.log_text());
    assert_eq!(f.kv(&f.a, &acct, "two").await.0, 200);
    let (status, body) = f.kv(&f.b, &acct, "three").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(f.expire_all().await, 1);
    f.wait_ledger(&f.a, 1).await;
    assert_eq!(f.challenge(&f.a, "198.51.100.18").await.0, 429);
}

impl Fleet {
    /// Opens an asset-upload session through `via` declaring `files` (hash, size);
    /// returns its upload token.
    async fn session(&self, via: &Member, acct: &Created, files: &[(&str, u64)]) -> String {
        let manifest: serde_json::Map<String, Value> = files
            .iter()
            .map(|(h, size)| (format!("/{h}.bin"), json!({"hash": h, "size": size})))
            .collect();
        let resp =
            self.client
                .post(via.url(&format!(
                    "/accounts/{}/workers/scripts/site/assets-upload-session",
                    acct.id
                )))
                .bearer_auth(&acct.token)
                .header("x-forwarded-for", "203.0.113.5")
                .json(&json!({ "manifest": manifest }))
                .send()
                .await
                .unwrap();
        assert_eq!(resp.status(), 200, "upload session");
        let v: Value = resp.json().await.unwrap();
        v["result"]["jwt"].as_str().expect("upload token").to_string()
    }

    /// Uploads `files` (hash, bytes) through `via` with the session token `jwt`.
    async fn upload(
        &self,
        via: &Member,
        acct: &Created,
        jwt: &str,
        files: &[(&str, &[u8])],
    ) -> (u16, Value) {
        use base64::Engine as _;
        let mut form = reqwest::multipart::Form::new();
        for (hash, bytes) in files {
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            form = form.part(
                hash.to_string(),
                reqwest::multipart::Part::text(text)
                    .file_name(hash.to_string())
                    .mime_str("application/null")
                    .unwrap(),
            );
        }
        let resp = self
            .client
            .post(via.url(&format!("/accounts/{}/workers/assets/upload?base64=true", acct.id)))
            .bearer_auth(jwt)
            .header("x-forwarded-for", "203.0.113.5")
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn asset_files_held(&self, acct: &Created) -> u64 {
        self.platform.platform().account(&acct.id).expect("platform account").counts.asset_files
    }
}

/// An asset-upload session opened through A, its upload sent to B: B knows the
/// session's token, charges the upload to the account and holds it to its manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_session_opened_through_a_is_checked_on_b() {
    let f = fleet().await;
    let acct = f.create(&f.a, "198.51.100.20").await;
    let hash = "0123456789abcdef0123456789abcdef";
    let jwt = f.session(&f.a, &acct, &[(hash, 1)]).await;
    let (status, body) = f.upload(&f.b, &acct, &jwt, &[(hash, b"three")]).await;
    assert_eq!(status, 403, "declared 1 byte, uploaded 5, through B: {body}");
    assert_eq!(body["errors"][0]["code"], 973, "refused by B's check, not the platform: {body}");
    assert_eq!(f.asset_files_held(&acct), 0);
    let (status, body) = f.upload(&f.b, &acct, &jwt, &[(hash, b"y")]).await;
    assert_eq!(status, 201, "the honest upload passes through B: {body}");
    let log = format!("{}{}", f.a.gateway.log_text(), f.b.gateway.log_text());
    assert!(!log.contains(&jwt), "the upload token is never logged");
}

/// An account's asset files add up over the gateways its uploads go through: one file
/// through A and one through B fill a quota of two, and a third is refused by A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_files_count_across_the_fleet() {
    let f = fleet().await;
    let acct = f.create(&f.a, "198.51.100.21").await;
    let h = |i: u8| format!("{:032x}", i);
    let (h1, h2, h3) = (h(1), h(2), h(3));
    let jwt = f.session(&f.a, &acct, &[(&h1, 3), (&h2, 3)]).await;
    let (status, body) = f.upload(&f.a, &acct, &jwt, &[(&h1, b"one")]).await;
    assert!((200..300).contains(&status), "{body}");
    let (status, body) = f.upload(&f.b, &acct, &jwt, &[(&h2, b"two")]).await;
    assert!((200..300).contains(&status), "{body}");
    let jwt = f.session(&f.b, &acct, &[(&h3, 3)]).await;
    let (status, body) = f.upload(&f.a, &acct, &jwt, &[(&h3, b"thr")]).await;
    assert_eq!(status, 403, "A counts the file uploaded through B: {body}");
    assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("asset_files"));
    assert_eq!(f.asset_files_held(&acct), 2);
}
