//! The audit log through the real gateway binary: a refusal by a rate limit, a quota
//! (before forwarding and in an asset upload's body) and a cleanup budget, and the
//! ledger charge of an account that expired unclaimed, each land in it as one JSON
//! line naming the rule, the key and the reason; and no token, claim URL or secret,
//! or upload JWT the test saw appears in the audit log, the access log or stderr.

use e2e::ADMIN_TOKEN;
use std::sync::Arc;
use std::time::Duration;

use e2e::{free_port, GatewayProcess};
use refplatform::pow::Challenge;
use refplatform::{EventsConfig, ManualClock, PlatformConfig};
use serde_json::{json, Value};

const SECRET: &str = "test-events-secret-0123456789";
const BASE: &str = "/client/v4";
const CREATOR: &str = "198.51.100.7";
const HAMMER: &str = "203.0.113.5";

const POLICY: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
[[rule]]
name = "challenge-per-ip"
match = { route = "provision-challenge" }
action = "limit"
limits = [{ key = "ip", rate = "3/hour", burst = 3 }]
[quotas]
max_queues = 1
[costs]
account = 10
queue = 2
claim_credit = 20
[budgets]
window_secs = 86400
[[budgets.limit]]
key = "ip"
units = 1
action = "refuse"
"#;

struct Stack {
    platform: refplatform::RunningPlatform,
    clock: Arc<ManualClock>,
    gateway: GatewayProcess,
    admin: String,
    client: reqwest::Client,
}

struct Created {
    id: String,
    token: String,
    claim_url: String,
}

async fn stack() -> Stack {
    let admin_port = free_port();
    let admin = format!("http://127.0.0.1:{admin_port}");
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig {
        pow_k: 2,
        pow_g: 64,
        events: Some(EventsConfig { url: format!("{admin}/events"), secret: SECRET.into() }),
        ..PlatformConfig::default()
    };
    let platform =
        refplatform::spawn(config, clock.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    // No [audit] section: the audit log is on by default, beside the config file.
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[access_log]\nfile = \"access.jsonl\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\nevents_secret = \"{SECRET}\"\nledger_file = \"ledger.jsonl\"\naccounts_file = \"accounts.jsonl\"\n",
        platform.addr()
    );
    let gateway = GatewayProcess::start_with(&body, |dir| {
        std::fs::write(dir.join("policy.toml"), POLICY).unwrap()
    });
    assert!(e2e::wait_listening(
        format!("127.0.0.1:{admin_port}").parse().unwrap(),
        Duration::from_secs(10)
    ));
    Stack { platform, clock, gateway, admin, client: reqwest::Client::new() }
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("{}{BASE}{path}", self.gateway.url())
    }

    async fn challenge(&self, ip: &str) -> reqwest::Response {
        self.client
            .post(self.url("/provisioning/previews/challenge"))
            .header("x-forwarded-for", ip)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
    }

    async fn create(&self, ip: &str) -> Created {
        let resp = self.challenge(ip).await;
        assert_eq!(resp.status(), 200, "challenge for {ip}");
        let v: Value = resp.json().await.unwrap();
        let challenge: Challenge = serde_json::from_value(v["result"].clone()).unwrap();
        let checkpoints = challenge.solve().unwrap();
        let resp = self
            .client
            .post(self.url("/provisioning/previews"))
            .header("x-forwarded-for", ip)
            .json(&e2e::provision::create_body(&challenge.challenge_token, &checkpoints))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "create for {ip}");
        let v: Value = resp.json().await.unwrap();
        Created {
            id: v["result"]["account"]["id"].as_str().unwrap().into(),
            token: v["result"]["account"]["apiToken"].as_str().unwrap().into(),
            claim_url: v["result"]["claim"]["url"].as_str().unwrap().into(),
        }
    }

    async fn call(&self, a: &Created, token: &str, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(&format!("/accounts/{}{path}", a.id)))
            .bearer_auth(token)
            .header("x-forwarded-for", CREATOR)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// An upload of `bytes` under `hash` with the session's `jwt`, as wrangler sends it.
    async fn upload(&self, a: &Created, jwt: &str, hash: &str, bytes: &[u8]) -> u16 {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        let form = reqwest::multipart::Form::new().part(
            hash.to_string(),
            reqwest::multipart::Part::text(text)
                .file_name(hash.to_string())
                .mime_str("application/null")
                .unwrap(),
        );
        self.client
            .post(self.url(&format!("/accounts/{}/workers/assets/upload?base64=true", a.id)))
            .bearer_auth(jwt)
            .header("x-forwarded-for", CREATOR)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn ledger_entries(&self, n: usize) -> Vec<Value> {
        self.platform.platform().events_settled().await;
        let entries: Value = self
            .client
            .get(format!("{}/ledger/entries", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = entries.as_array().cloned().unwrap_or_default();
        assert!(entries.len() >= n, "{entries:?}\n{}", self.gateway.log_text());
        entries
    }
}

fn read_lines(path: &std::path::Path) -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (text, lines)
}

fn find<'a>(lines: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    lines.iter().find(|l| pred(l)).unwrap_or_else(|| {
        panic!(
            "no audit line for {what} in:\n{}",
            lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_charges_are_audited_and_no_secret_is_logged() {
    let mut s = stack().await;
    let unclaimed = s.create(CREATOR).await;
    // Claimed from elsewhere: its credit must not pay off the creator's debt.
    let claimed = s.create("192.0.2.77").await;

    // Quota before forwarding: the second queue of an account allowed one.
    assert_eq!(
        s.call(&unclaimed, &unclaimed.token, "/queues", json!({"queue_name": "q0"})).await.0,
        200
    );
    let (status, body) =
        s.call(&unclaimed, &unclaimed.token, "/queues", json!({"queue_name": "q1"})).await;
    assert_eq!(status, 403, "{body}");
    // Quota in the body: an asset larger than its manifest declared.
    let hash = "0123456789abcdef0123456789abcdef";
    let manifest = json!({"manifest": {"/a.txt": {"hash": hash, "size": 1}}});
    let (status, body) = s
        .call(&unclaimed, &unclaimed.token, "/workers/scripts/site/assets-upload-session", manifest)
        .await;
    assert_eq!(status, 200, "{body}");
    let jwt = body["result"]["jwt"].as_str().expect("upload JWT").to_string();
    assert_eq!(s.upload(&unclaimed, &jwt, hash, b"more than one byte").await, 403);
    // A token nobody issued.
    let made_up = "made-up-token-0123456789abcdef";
    let _ = s.call(&unclaimed, made_up, "/workers/scripts", json!({})).await;

    // Rate limit: the fourth challenge from one address within the hour.
    for _ in 0..3 {
        assert_eq!(s.challenge(HAMMER).await.status(), 200);
    }
    assert_eq!(s.challenge(HAMMER).await.status(), 429);

    // A claim through the gateway (the secret is in the path), then the other
    // account's expiry: its cleanup is charged to its creator.
    let claim_path = claimed.claim_url.split_once("/claim/").map(|(_, s)| s).expect("claim path");
    let claim = s
        .client
        .post(format!("{}/claim/{claim_path}", s.gateway.url()))
        .header("accept", "application/json")
        .header("x-forwarded-for", CREATOR)
        .send()
        .await
        .unwrap();
    assert!(claim.status().is_success(), "claim: {}", claim.status());
    s.clock.advance(Duration::from_secs(61 * 60));
    assert_eq!(s.platform.platform().sweep().len(), 1);
    s.ledger_entries(2).await;
    // Budget: the creator now owes 12 units, over its budget of 1.
    let refused = s.challenge(CREATOR).await;
    assert_eq!(refused.status(), 429);

    s.gateway.signal("TERM");
    assert!(s.gateway.wait_exit(Duration::from_secs(10)).is_some(), "gateway did not stop");
    let dir = s.gateway.dir.path().to_path_buf();
    let (audit_text, audit) = read_lines(&dir.join("audit.jsonl"));

    let rate = find(&audit, "the rate limit", |l| l["reason"] == "rate_limited");
    assert_eq!(rate["event"], "refusal");
    assert_eq!(rate["rule"], "challenge-per-ip");
    assert_eq!((rate["key_kind"].as_str(), rate["key_value"].as_str()), (Some("ip"), Some(HAMMER)));
    assert_eq!(
        (rate["status"].as_u64(), rate["route"].as_str()),
        (Some(429), Some("provision-challenge"))
    );
    assert!(rate["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{rate}");

    let quota = find(&audit, "the queue quota", |l| l["rule"] == "quota:queues");
    assert_eq!((quota["reason"].as_str(), quota["status"].as_u64()), (Some("quota"), Some(403)));
    assert_eq!(
        (quota["key_kind"].as_str(), quota["key_value"].as_str()),
        (Some("account"), Some(unclaimed.id.as_str()))
    );

    let body_quota = find(&audit, "the asset upload", |l| l["rule"] == "body");
    assert_eq!(
        (body_quota["reason"].as_str(), body_quota["key_value"].as_str()),
        (Some("quota"), Some(unclaimed.id.as_str()))
    );

    let budget = find(&audit, "the budget", |l| l["reason"] == "budget");
    assert_eq!(budget["rule"], "budget");
    assert_eq!(budget["status"], 429);
    assert!(budget["key_value"].as_str().is_some_and(|v| v.starts_with("198.51.100.")), "{budget}");

    let charge = find(&audit, "the ledger charge", |l| l["event"] == "charge");
    assert_eq!(charge["account"], unclaimed.id.as_str());
    assert_eq!(charge["units"], 12, "10 per account + one queue: {charge}");
    assert_eq!(
        (charge["key_kind"].as_str(), charge["key_value"].as_str()),
        (Some("ip"), Some(CREATOR))
    );
    assert_eq!(charge["reason"], "expired_unclaimed");
    let credit = find(&audit, "the claim's credit", |l| l["event"] == "credit");
    assert_eq!(credit["account"], claimed.id.as_str());

    // Every secret the test saw, searched for in every log the gateway wrote.
    let access = std::fs::read_to_string(dir.join("access.jsonl")).expect("access log");
    let stderr = s.gateway.log_text();
    let ledger = std::fs::read_to_string(dir.join("ledger.jsonl")).expect("ledger");
    let secrets = [
        ("token", unclaimed.token.as_str()),
        ("token", claimed.token.as_str()),
        ("made-up token", made_up),
        ("claim URL", claimed.claim_url.as_str()),
        ("claim secret", claim_path),
        ("upload JWT", jwt.as_str()),
    ];
    for (what, secret) in secrets {
        assert!(secret.len() >= 16, "{what} is long enough to search for");
        for (log, text) in
            [("audit", &audit_text), ("access", &access), ("stderr", &stderr), ("ledger", &ledger)]
        {
            assert!(!text.contains(secret), "the {what} leaked into the {log} log");
        }
    }
    assert!(access.contains("/claim/{redacted}"), "the claim was logged, redacted");
}
