//! The stack the quota-integrity tests run against, and how they call it.

use e2e::ADMIN_TOKEN;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use e2e::{free_port, GatewayProcess};
use refplatform::{ManualClock, PlatformConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BASE, IP, POLICY};

/// Platform and gateway (with an admin listener) of one test.
pub struct Stack {
    pub platform: refplatform::RunningPlatform,
    pub gateway: GatewayProcess,
    pub admin: String,
    pub client: reqwest::Client,
}

/// A temporary account created through the gateway.
pub struct Account {
    pub id: String,
    pub token: String,
}

pub async fn stack_with(policy: &str, server_extra: &str) -> Stack {
    let admin_port = free_port();
    let admin = format!("http://127.0.0.1:{admin_port}");
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig { pow_k: 2, pow_g: 64, ..PlatformConfig::default() };
    let platform = refplatform::spawn(config, clock, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let body = format!(
        "{server_extra}\n[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\n",
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
    Stack { platform, gateway, admin, client: reqwest::Client::new() }
}

pub async fn stack() -> Stack {
    stack_with(POLICY, "").await
}

impl Stack {
    pub fn url(&self, path: &str) -> String {
        format!("{}{BASE}{path}", self.gateway.url())
    }

    pub async fn create(&self) -> Account {
        let api = self.url("");
        let (status, v) =
            e2e::provision::create(&self.client, &api, &[("x-forwarded-for", IP)]).await;
        assert_eq!(status, 200, "create: {v}");
        Account {
            id: v["result"]["account"]["id"].as_str().expect("account id").into(),
            token: v["result"]["account"]["apiToken"].as_str().expect("token").into(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        a: &Account,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let resp = self
            .client
            .request(method, self.url(&format!("/accounts/{}{path}", a.id)))
            .bearer_auth(&a.token)
            .header("x-forwarded-for", IP)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn put_script(&self, a: &Account, name: &str) -> u16 {
        let form = reqwest::multipart::Form::new()
            .part(
                "metadata",
                reqwest::multipart::Part::text(
                    json!({"main_module": "index.js", "compatibility_date": "2025-01-01"})
                        .to_string(),
                ),
            )
            .part(
                "index.js",
                reqwest::multipart::Part::text("export default {}")
                    .file_name("index.js")
                    .mime_str("application/javascript+module")
                    .unwrap(),
            );
        self.client
            .put(self.url(&format!("/accounts/{}/workers/scripts/{name}", a.id)))
            .bearer_auth(&a.token)
            .header("x-forwarded-for", IP)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Opens an asset-upload session for `files` (hash, declared size); its JWT.
    pub async fn session(&self, a: &Account, files: &[(&str, u64)]) -> (u16, Value) {
        let manifest: serde_json::Map<String, Value> = files
            .iter()
            .map(|(h, size)| (format!("/{h}.bin"), json!({"hash": h, "size": size})))
            .collect();
        self.call(
            reqwest::Method::POST,
            a,
            "/workers/scripts/site/assets-upload-session",
            json!({ "manifest": manifest }),
        )
        .await
    }

    /// Uploads files (hash, bytes) base64-encoded, as wrangler does, with `jwt`.
    pub async fn upload(&self, a: &Account, jwt: &str, files: &[(&str, Vec<u8>)]) -> (u16, Value) {
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
            .post(self.url(&format!("/accounts/{}/workers/assets/upload?base64=true", a.id)))
            .bearer_auth(jwt)
            .header("x-forwarded-for", IP)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.admin))
            .bearer_auth(e2e::ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn platform_counts(&self, a: &Account) -> refplatform::ResourceCounts {
        self.platform.platform().account(&a.id).expect("platform account").counts
    }
}

/// Sends `request` on a new connection and reads the answer until the gateway closes
/// it (every request here says `Connection: close`), for at most 10 s.
pub async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let _ = conn.write_all(request).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut out)).await;
    if read.is_err() {
        eprintln!("no complete answer within 10 s");
    }
    String::from_utf8_lossy(&out).into_owned()
}
