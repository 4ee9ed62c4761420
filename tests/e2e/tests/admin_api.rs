//! The operator side of the admin listener through the real binary: the token on
//! every route, blocks that stop an address at once with their reason, inspection,
//! the policy's hash and reload, and the refusal to start a reachable admin listener
//! without a token.

use std::time::Duration;

use e2e::admin::{AdminStack, FORWARDED, POLICY};
use e2e::{free_port, repo_root, workspace_bin, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

/// (METHOD, path) of every operation of `gateway/openapi.yaml` that needs the token.
fn secured_operations() -> Vec<(Method, String)> {
    let text = std::fs::read_to_string(repo_root().join("gateway/openapi.yaml")).expect("file");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        for (method, op) in item.as_mapping().expect("operations") {
            let open = op["security"].as_sequence().is_some_and(|s| s.is_empty());
            if !open {
                let method = method.as_str().expect("method").to_ascii_uppercase();
                out.push((
                    Method::from_bytes(method.as_bytes()).expect("method"),
                    path.as_str().expect("path").to_string(),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_answers_401_without_the_token_or_with_a_wrong_one() {
    let s = AdminStack::start(POLICY).await;
    let ops = secured_operations();
    assert!(ops.len() >= 17, "{} secured operations", ops.len());
    for (method, path) in &ops {
        let url = format!("{}{path}", s.admin);
        for auth in [None, Some("wrong-token-0123456789"), Some(""), Some("Basic abc")] {
            let mut req = s.client.request(method.clone(), &url);
            match auth {
                Some(a) if a.starts_with("Basic") => req = req.header("authorization", a),
                Some(t) => req = req.bearer_auth(t),
                None => {}
            }
            let resp = req.send().await.expect("sent");
            assert_eq!(resp.status(), 401, "{method} {path} with {auth:?}");
            assert!(resp.headers().contains_key("www-authenticate"), "{method} {path}");
            let body: Value = resp.json().await.expect("a JSON error");
            assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{method} {path}");
        }
        // With the token the route is served (whatever its answer to an empty call).
        let resp = s
            .client
            .request(method.clone(), &url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("sent");
        assert!(
            ![401, 404, 405].contains(&resp.status().as_u16()),
            "{method} {path} with the token: {}",
            resp.status()
        );
    }
    // The open routes stay open: the dashboard's files and the platform's signed events.
    let page = s.client.get(format!("{}/dashboard", s.admin)).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let events = s.client.post(format!("{}/events", s.admin)).body("{}").send().await.expect("ev");
    assert_eq!(events.status(), 401, "an unsigned event is refused by its signature check");
    let log = s.gateway.log_text();
    assert!(!log.contains(ADMIN_TOKEN), "the token never reaches the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_stops_the_address_at_once_with_its_reason_and_unblock_lifts_it() {
    let s = AdminStack::start(POLICY).await;
    let (blocked, other) = ("198.51.100.7", "203.0.113.5");
    assert_eq!(s.call_as(blocked).await.0, FORWARDED, "forwarded before the block");

    let (status, block) = s
        .admin_send(
            Method::POST,
            "/operator/blocks",
            json!({"target": "198.51.100.0/24", "reason": "claim-URL guessing", "ttl_secs": 600}),
        )
        .await;
    assert_eq!(status, 201, "{block}");
    assert_eq!(block["target"], "net:198.51.100.0/24");
    let (status, message) = s.call_as(blocked).await;
    assert_eq!(status, 403, "blocked at once");
    assert!(message.contains("claim-URL guessing"), "{message}");
    assert!(message.contains("lifts in 600 seconds"), "{message}");
    assert_eq!(s.call_as(other).await.0, FORWARDED, "another network is not blocked");

    let (_, listed) = s.admin_get("/operator/blocks").await;
    assert_eq!(listed["blocks"][0]["refused"], 1, "{listed}");
    let (_, top) = s.admin_get("/operator/top?by=refusals").await;
    assert_eq!(top["sources"][0]["key"], format!("ip:{blocked}"), "{top}");
    assert_eq!(top["sources"][0]["blocked"], 1, "{top}");
    let (_, summary) = s.admin_get("/operator/summary").await;
    assert_eq!(summary["blocks"]["refused"], 1, "{summary}");
    let metrics = s
        .client
        .get(format!("{}/metrics", s.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    for line in ["gateway_blocks_active 1", "gateway_block_refusals_total 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    let (status, _) =
        s.admin_send(Method::DELETE, "/operator/blocks?target=198.51.100.0/24", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(s.call_as(blocked).await.0, FORWARDED, "lifted at once");
    let (status, _) =
        s.admin_send(Method::DELETE, "/operator/blocks?target=198.51.100.0/24", json!({})).await;
    assert_eq!(status, 404, "nothing left to lift");

    // Bad requests are refused with a JSON error that says what is expected.
    for body in [
        json!({"target": "not-an-address", "reason": "x", "ttl_secs": 60}),
        json!({"target": "192.0.2.1", "reason": "x", "ttl_secs": 0}),
        json!({"target": "192.0.2.1", "reason": "", "ttl_secs": 60}),
        json!({"target": "192.0.2.1", "ttl_secs": 60}),
    ] {
        let (status, v) = s.admin_send(Method::POST, "/operator/blocks", body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().is_some(), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_a_sources_limits_refusals_ledger_and_accounts() {
    let s = AdminStack::start(POLICY).await;
    let ip = "198.51.100.20";
    let id = s.create_as(ip).await;
    for _ in 0..7 {
        s.call_as(ip).await;
    }
    s.expire_all();
    s.ledger_entries(1).await;
    let (status, v) = s.admin_get(&format!("/operator/inspect?key=ip:{ip}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["refusals"]["refused"], 2, "5 of 7 calls pass the limit: {v}");
    let limit = v["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .find(|l| l["rule"] == "other-per-ip")
        .cloned()
        .expect("the per-address limit");
    assert_eq!(limit["key"], format!("ip={ip}"), "{limit}");
    assert!(limit["state"].as_str().is_some_and(|s| s.contains("REFUSE")), "{limit}");
    assert_eq!(v["ledger"]["debt_now"], 10, "{v}");
    assert_eq!(v["accounts"][0]["account_id"], id.as_str(), "{v}");
    let (status, prefix) = s.admin_get("/operator/inspect?key=ipv4/24:198.51.100.0/24").await;
    assert_eq!(status, 200);
    assert_eq!(prefix["accounts_total"], 1, "{prefix}");
    let (status, _) = s.admin_get("/operator/inspect?key=nonsense").await;
    assert_eq!(status, 400);
}

fn sha256_hex(bytes: &[u8]) -> String {
    // The e2e crate has no hash dependency: ask the system's sha256sum.
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(bytes).expect("write");
    let out = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_hash_follows_a_reload_and_a_broken_file_keeps_the_old_one() {
    let s = AdminStack::start(POLICY).await;
    let file = s.gateway.dir.path().join("policy.toml");
    let (_, v) = s.admin_get("/operator/policy").await;
    assert_eq!(v["sha256"], sha256_hex(POLICY.as_bytes()), "{v}");

    let changed = POLICY.replace("5/hour", "50/hour");
    std::fs::write(&file, &changed).expect("write");
    let (status, v) = s.admin_send(Method::POST, "/operator/reload", json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["sha256"], sha256_hex(changed.as_bytes()));
    let (_, v) = s.admin_get("/operator/policy").await;
    assert_eq!(v["sha256"], sha256_hex(changed.as_bytes()));

    std::fs::write(&file, "version = 1\n[[rule]]\nname = 3\n").expect("write");
    let (status, v) = s.admin_send(Method::POST, "/operator/reload", json!({})).await;
    assert_eq!(status, 422, "{v}");
    assert!(v["errors"].as_str().is_some_and(|e| e.contains("policy.toml:")), "{v}");
    assert_eq!(v["sha256"], sha256_hex(changed.as_bytes()), "the old policy stays");
}

/// Runs `gateway run` with an admin listener on `listen` and no token in the file;
/// `env_token` is given as GATEWAY_ADMIN_TOKEN.
fn run_with_admin(listen: &str, env_token: Option<&str>) -> std::process::Command {
    let dir = tempfile::tempdir().expect("dir").keep();
    std::fs::write(dir.join("policy.toml"), "version = 1\n").expect("policy");
    let port = free_port();
    std::fs::write(
        dir.join("gateway.toml"),
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n\n[upstream]\nurl = \"http://127.0.0.1:9\"\n\n\
             [policy]\nfile = \"policy.toml\"\n\n[admin]\nlisten = \"{listen}\"\n"
        ),
    )
    .expect("config");
    let mut cmd = std::process::Command::new(workspace_bin("gateway"));
    cmd.args(["run", "--config"]).arg(dir.join("gateway.toml"));
    cmd.env_remove("GATEWAY_ADMIN_TOKEN");
    if let Some(t) = env_token {
        cmd.env("GATEWAY_ADMIN_TOKEN", t);
    }
    cmd
}

#[test]
fn a_reachable_admin_listener_without_a_token_refuses_to_start() {
    let listen = format!("0.0.0.0:{}", free_port());
    let out = e2e::run_bounded(run_with_admin(&listen, None), Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "exit code of a configuration error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gateway.toml:"), "located: {stderr}");
    assert!(
        stderr.contains(&format!("admin.listen {listen} is reachable from other machines"))
            && stderr.contains("GATEWAY_ADMIN_TOKEN"),
        "{stderr}"
    );

    // The same listener with the token from the environment starts.
    let port = free_port();
    let mut child = run_with_admin(&format!("0.0.0.0:{port}"), Some("token-from-the-environment"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gateway");
    let up = e2e::wait_listening(
        format!("127.0.0.1:{port}").parse().expect("addr"),
        Duration::from_secs(30),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "GATEWAY_ADMIN_TOKEN is a token");
}
