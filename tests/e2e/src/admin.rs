//! A gateway with its admin API in front of the reference platform, for the tests of
//! the operator surfaces: the admin token, signed events, a status token apart from
//! the events secret, and clients simulated by `X-Forwarded-For` from loopback.

use std::sync::Arc;
use std::time::Duration;

use refplatform::{EventsConfig, ManualClock, PlatformConfig, RunningPlatform};
use serde_json::Value;

use crate::{free_port, wait_listening, GatewayProcess, ADMIN_TOKEN};

/// The events secret of [`AdminStack`].
pub const EVENTS_SECRET: &str = "admin-stack-events-secret-0123";
/// The status-API token of [`AdminStack`].
pub const STATUS_TOKEN: &str = "admin-stack-status-token-0123";

/// A policy with a small per-address limit on `other` calls (so bounded traffic is
/// partly refused), cleanup costs, and budgets the dashboard can draw.
pub const POLICY: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]

[[rule]]
name = "other-per-ip"
match = { route = "other" }
action = "limit"
limits = [{ key = "ip", rate = "5/hour", burst = 5 }]
message = "too many calls from your address"

[costs]
account = 10
claim_credit = 20

[budgets]
window_secs = 86400

[[budgets.limit]]
key = "ip"
units = 30
action = "refuse"

[[budgets.global]]
units = 1000
action = "harder_pow"
"#;

/// What [`AdminStack::call_as`] gets when the gateway forwards the call.
pub const FORWARDED: u16 = 404;

/// Platform and gateway of one test.
pub struct AdminStack {
    /// The reference platform (its clock is [`AdminStack::clock`]).
    pub platform: RunningPlatform,
    /// The platform's clock.
    pub clock: Arc<ManualClock>,
    /// The gateway.
    pub gateway: GatewayProcess,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    /// A client for both.
    pub client: reqwest::Client,
}

impl AdminStack {
    /// Starts the platform and the gateway with `policy` (written as `policy.toml`).
    pub async fn start(policy: &str) -> AdminStack {
        let admin_port = free_port();
        let admin = format!("http://127.0.0.1:{admin_port}");
        // The platform's clock runs two hours behind the gateway's, so what its sweeper
        // reports after moving past the accounts' hour of life is in the gateway's
        // last hour (the ledger is stamped with the events' times).
        let start = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
        let clock = Arc::new(ManualClock::new(start));
        let config = PlatformConfig {
            pow_k: 2,
            pow_g: 64,
            events: Some(EventsConfig {
                url: format!("{admin}/events"),
                secret: EVENTS_SECRET.into(),
            }),
            status_token: Some(STATUS_TOKEN.into()),
            ..PlatformConfig::default()
        };
        let platform =
            refplatform::spawn(config, clock.clone(), "127.0.0.1:0".parse().expect("addr"))
                .await
                .expect("platform");
        let body = format!(
            "[upstream]\nurl = \"http://{p}\"\n\n[policy]\nfile = \"policy.toml\"\nwatch = false\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\n\
             events_secret = \"{EVENTS_SECRET}\"\nstatus_token = \"{STATUS_TOKEN}\"\n\
             reconcile_url = \"http://{p}/internal/accounts\"\nreconcile_interval_secs = 3600\n",
            p = platform.addr()
        );
        let policy = policy.to_string();
        let gateway = GatewayProcess::start_with(&body, move |dir| {
            std::fs::write(dir.join("policy.toml"), policy).expect("policy written")
        });
        let addr = format!("127.0.0.1:{admin_port}").parse().expect("addr");
        assert!(wait_listening(addr, Duration::from_secs(10)), "admin listener");
        AdminStack { platform, clock, gateway, admin, client: reqwest::Client::new() }
    }

    /// `GET {admin}{path}` with the admin token; the status and the JSON body.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin call");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `method {admin}{path}` with the admin token and a JSON body.
    pub async fn admin_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("admin call");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `GET /client/v4/user` through the gateway as client `ip`: the status and the
    /// v4 envelope's first error message. The reference platform has no such route,
    /// so a forwarded call gets its 404 ([`FORWARDED`]).
    pub async fn call_as(&self, ip: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}/client/v4/user", self.gateway.url()))
            .header("x-forwarded-for", ip)
            .header("user-agent", "undici")
            .send()
            .await
            .expect("call through the gateway");
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        let message = v["errors"][0]["message"].as_str().unwrap_or_default().to_string();
        (status, message)
    }

    /// Creates one account through the gateway as client `ip` (challenge, solve,
    /// create); its id.
    pub async fn create_as(&self, ip: &str) -> String {
        let api = format!("{}/client/v4", self.gateway.url());
        let headers = [("x-forwarded-for", ip), ("user-agent", "undici")];
        let (status, v) = crate::provision::create(&self.client, &api, &headers).await;
        assert_eq!(status, 200, "create as {ip}: {v}");
        v["result"]["account"]["id"].as_str().expect("account id").to_string()
    }

    /// Moves the platform past every account's lifetime and sweeps: the expired
    /// events go to the gateway, which charges their creators.
    pub fn expire_all(&self) -> usize {
        self.clock.advance(Duration::from_secs(61 * 60));
        self.platform.platform().sweep().len()
    }

    /// The ledger's entries once every platform event sent so far was delivered (the
    /// gateway applies an event before it answers it); at least `n` of them.
    pub async fn ledger_entries(&self, n: usize) -> Vec<Value> {
        self.platform.platform().events_settled().await;
        let (_, v) = self.admin_get("/ledger/entries").await;
        let entries = v.as_array().cloned().unwrap_or_default();
        assert!(entries.len() >= n, "ledger has {} entries, expected {n}", entries.len());
        entries
    }
}
