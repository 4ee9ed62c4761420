//! The whole HTTP flow a client goes through: provisioning, a first deploy
//! and a redeploy as wrangler does them, resources, assets, claim.

mod common;

use base64::Engine as _;
use refplatform::PlatformConfig;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

struct Api {
    http: reqwest::Client,
    base: String,
    id: String,
    token: String,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}/accounts/{}/{}", self.base, self.id, path)
    }
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("send");
        let status = res.status().as_u16();
        (status, res.json().await.expect("json"))
    }
    async fn multipart(&self, method: reqwest::Method, path: &str, source: &str) -> (u16, Value) {
        let form = Form::new()
            .part(
                "metadata",
                Part::text(json!({"main_module": "index.js", "bindings": [], "compatibility_date": "2025-01-01"}).to_string())
                    .mime_str("application/json")
                    .expect("mime"),
            )
            .part(
                "index.js",
                Part::text(source.to_string())
                    .file_name("index.js")
                    .mime_str("application/javascript+module")
                    .expect("mime"),
            );
        let res = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .expect("send");
        let status = res.status().as_u16();
        (status, res.json().await.expect("json"))
    }
}

use reqwest::Method;

#[tokio::test]
async fn full_flow() {
    let (running, _clock) = common::start(PlatformConfig::default()).await;
    let http = reqwest::Client::new();
    let base = running.api_base_url();
    let created = common::create_account(&http, &base).await;
    let api = Api {
        http: http.clone(),
        base: base.clone(),
        id: created["account"]["id"].as_str().expect("id").to_string(),
        token: created["account"]["apiToken"].as_str().expect("token").to_string(),
    };
    assert!(created["account"]["expiresAt"].as_str().is_some());
    assert!(created["claim"]["expiresAt"].as_str().is_some());

    // Auth: missing token 401, other account's token 403.
    let res = http.get(api.url("workers/subdomain")).send().await.expect("send");
    assert_eq!(res.status(), 401);
    let other = common::create_account(&http, &base).await;
    let res = http
        .get(api.url("workers/subdomain"))
        .bearer_auth(other["account"]["apiToken"].as_str().expect("token"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 403);

    // First deploy, in wrangler's order.
    let (s, b) = api.call(Method::GET, "workers/services/hello", None).await;
    assert_eq!((s, b["errors"][0]["code"].as_u64()), (404, Some(10007)));
    let (s, b) = api.call(Method::GET, "workers/subdomain", None).await;
    assert_eq!(s, 200);
    assert!(b["result"]["subdomain"].as_str().is_some());
    let (s, _) = api.call(Method::GET, "workers/scripts/hello/deployments", None).await;
    assert_eq!(s, 404);
    let (s, _) = api.call(Method::GET, "workers/scripts/hello/settings", None).await;
    assert_eq!(s, 404);
    let (s, b) = api
        .multipart(
            Method::PUT,
            "workers/scripts/hello?excludeScript=true&bindings_inherit=strict",
            "export default {}",
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = api.call(Method::GET, "workers/workers/hello", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["result"]["subdomain"]["enabled"], false);
    let (s, b) = api
        .call(
            Method::POST,
            "workers/scripts/hello/subdomain",
            Some(json!({"enabled": true, "previews_enabled": false})),
        )
        .await;
    assert_eq!((s, b["result"]["enabled"].as_bool()), (200, Some(true)));

    // Redeploy.
    let (s, b) = api.call(Method::GET, "workers/services/hello", None).await;
    assert_eq!(s, 200);
    assert!(b["result"]["default_environment"]["script"]["tag"].as_str().is_some());
    let (s, b) =
        api.multipart(Method::POST, "workers/scripts/hello/versions", "export default {x:1}").await;
    assert_eq!(s, 200, "{b}");
    let version = b["result"]["id"].as_str().expect("version id").to_string();
    let (s, _) = api
        .call(Method::POST, "workers/scripts/hello/deployments",
              Some(json!({"strategy": "percentage", "versions": [{"version_id": version, "percentage": 100}]})))
        .await;
    assert_eq!(s, 200);
    let (s, b) = api.call(Method::GET, "workers/scripts/hello/deployments", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["result"]["deployments"][0]["versions"][0]["version_id"], json!(version));
    let (s, _) = api
        .call(
            Method::PATCH,
            "workers/scripts/hello/script-settings",
            Some(json!({"logpush": false})),
        )
        .await;
    assert_eq!(s, 200);

    // Resources: create, list, delete.
    for (path, body, id_field) in [
        ("storage/kv/namespaces", json!({"title": "kv1"}), "id"),
        ("d1/database", json!({"name": "db1"}), "uuid"),
        ("queues", json!({"queue_name": "q1"}), "queue_id"),
        (
            "hyperdrive/configs",
            json!({"name": "h1", "origin": {"host": "db", "port": 5432, "password": "secret"}}),
            "id",
        ),
    ] {
        let (s, b) = api.call(Method::POST, path, Some(body.clone())).await;
        assert_eq!(s, 200, "{path}: {b}");
        let id = b["result"][id_field].as_str().expect("id").to_string();
        assert!(!b.to_string().contains("\"secret\""), "password echoed");
        let (s, _) = api.call(Method::POST, path, Some(body)).await;
        assert_eq!(s, 400, "duplicate {path}");
        let (s, b) = api.call(Method::GET, path, None).await;
        assert_eq!((s, b["result"].as_array().map(Vec::len)), (200, Some(1)));
        let (s, _) = api.call(Method::DELETE, &format!("{path}/{id}"), None).await;
        assert_eq!(s, 200);
        let (s, b) = api.call(Method::GET, path, None).await;
        assert_eq!((s, b["result"].as_array().map(Vec::len)), (200, Some(0)));
    }
    // Leave one KV namespace in place for the counts below.
    let (s, _) =
        api.call(Method::POST, "storage/kv/namespaces", Some(json!({"title": "keep"}))).await;
    assert_eq!(s, 200);

    // Static assets: session, then upload with the session token.
    let content = b"<h1>hello</h1>";
    let (s, b) = api
        .call(
            Method::POST,
            "workers/scripts/hello/assets-upload-session",
            Some(json!({"manifest": {"/index.html": {"hash": "abc123", "size": content.len()}}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result"]["buckets"], json!([["abc123"]]));
    let upload_jwt = b["result"]["jwt"].as_str().expect("jwt").to_string();
    let form = Form::new().part(
        "abc123",
        Part::text(base64::engine::general_purpose::STANDARD.encode(content))
            .file_name("abc123")
            .mime_str("text/html")
            .expect("mime"),
    );
    let res = http
        .post(format!("{}?base64=true", api.url("workers/assets/upload")))
        .bearer_auth(&upload_jwt)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 201);
    let b: Value = res.json().await.expect("json");
    assert!(b["result"]["jwt"].as_str().is_some());
    // The same manifest again needs no upload.
    let (_, b) = api
        .call(
            Method::POST,
            "workers/scripts/hello/assets-upload-session",
            Some(json!({"manifest": {"/index.html": {"hash": "abc123", "size": content.len()}}})),
        )
        .await;
    assert_eq!(b["result"]["buckets"], json!([]));

    let snap = running.platform().account(&api.id).expect("snapshot");
    assert_eq!(snap.scripts, vec!["hello".to_string()]);
    assert_eq!(snap.counts.kv_namespaces, 1);
    assert_eq!(snap.counts.asset_files, 1);
    assert_eq!(snap.counts.asset_bytes, content.len() as u64);

    // Delete the script.
    let (s, _) = api.call(Method::DELETE, "workers/scripts/hello", None).await;
    assert_eq!(s, 200);
    let (s, _) = api.call(Method::DELETE, "workers/scripts/hello", None).await;
    assert_eq!(s, 404);

    // Unknown routes answer a v4 404.
    let (s, b) = api.call(Method::GET, "workers/nonsense", None).await;
    assert_eq!(s, 404);
    assert_eq!(b["success"], false);

    // Claim.
    let claim_url = created["claim"]["url"].as_str().expect("claim url");
    let res =
        http.post(claim_url).header("accept", "application/json").send().await.expect("claim");
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.expect("json");
    assert_eq!(b["claimed"], true);

    // The request log holds no secrets.
    let log = running.platform().request_log();
    assert!(log.iter().any(|r| r.method == "PUT" && r.path.ends_with("/workers/scripts/hello")));
    let secret = claim_url.rsplit('/').next().expect("secret");
    for r in &log {
        assert!(!r.path.contains(secret));
        assert!(!r.path.contains(&api.token));
        assert!(!r.path.contains('?'));
    }
    running.shutdown().await;
}
