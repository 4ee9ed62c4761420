//! Tokens, routes and client identity, attacked through the real gateway binary with
//! the shipped `rules/default.toml`: random bearer tokens, a token spray against a
//! small table, the `claim` and `other` routes, forwarding headers from a peer nobody
//! trusts, and paths that a normalising upstream would route to a protected endpoint.

use e2e::ADMIN_TOKEN;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::{free_port, repo_root, wait_listening, workspace_bin, GatewayProcess};
use refplatform::{ManualClock, PlatformConfig};
use serde_json::{json, Value};

const BASE: &str = "/client/v4";

/// `rules/default.toml` as shipped, with `edits` (from, to) applied to its text.
fn shipped_policy(edits: &[(&str, &str)]) -> String {
    let mut text =
        std::fs::read_to_string(repo_root().join("rules/default.toml")).expect("default.toml");
    for (from, to) in edits {
        assert!(text.contains(from), "rules/default.toml no longer contains {from:?}");
        text = text.replace(from, to);
    }
    text
}

async fn platform() -> refplatform::RunningPlatform {
    let config = PlatformConfig { pow_k: 4, pow_g: 256, ..PlatformConfig::default() };
    let clock = Arc::new(ManualClock::starting_now());
    refplatform::spawn(config, clock, "127.0.0.1:0".parse().expect("addr")).await.expect("platform")
}

/// The gateway in front of `upstream` with `policy`, and an admin listener.
fn gateway(upstream: SocketAddr, policy: &str) -> (GatewayProcess, String) {
    let admin_port = free_port();
    let body = format!(
        "[upstream]\nurl = \"http://{upstream}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\n"
    );
    let policy = policy.to_string();
    let gw = GatewayProcess::start_with(&body, move |dir: &Path| {
        std::fs::write(dir.join("policy.toml"), policy).expect("policy");
    });
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().expect("addr");
    assert!(wait_listening(admin, Duration::from_secs(10)), "admin listener");
    (gw, format!("http://{admin}"))
}

/// A keep-alive HTTP client whose connections come from `source` (an address in
/// 127.0.0.0/8), so tests can put clients in different networks without any header.
fn client_from(source: &str) -> reqwest::Client {
    let ip: IpAddr = source.parse().expect("source address");
    reqwest::Client::builder().local_address(ip).build().expect("client")
}

/// Creates a temporary account through the gateway by the real protocol.
async fn create_account(client: &reqwest::Client, gw: &str) -> (String, String) {
    let api = format!("{gw}{BASE}");
    let (status, v) = e2e::provision::create(client, &api, &[("user-agent", "undici")]).await;
    assert_eq!(status, 200, "create: {v}");
    let id = v["result"]["account"]["id"].as_str().expect("id").to_string();
    let token = v["result"]["account"]["apiToken"].as_str().expect("token").to_string();
    (id, token)
}

/// A token nobody issued, distinct per `i`.
fn random_token(i: usize) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("spray{i:08}x{nanos:09}")
}

/// GET of a deploy read with `token`: the status.
async fn read_with(client: &reqwest::Client, gw: &str, account: &str, token: &str) -> u16 {
    client
        .get(format!("{gw}{BASE}/accounts/{account}/workers/scripts"))
        .bearer_auth(token)
        .send()
        .await
        .expect("read")
        .status()
        .as_u16()
}

/// The key count of the table whose name starts with `limit`, from `GET /stats`.
async fn table_keys(admin: &str, limit: &str) -> u64 {
    let stats: Value = reqwest::Client::new()
        .get(format!("{admin}/stats"))
        .bearer_auth(e2e::ADMIN_TOKEN)
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    let tables = stats["tables"].as_array().cloned().unwrap_or_default();
    tables
        .iter()
        .find(|t| t["limit"].as_str().is_some_and(|l| l.starts_with(limit)))
        .and_then(|t| t["keys"].as_u64())
        .unwrap_or_else(|| panic!("no table {limit} in {stats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_count_by_client_address() {
    let platform = platform().await;
    let (gw, admin) = gateway(platform.addr(), &shipped_policy(&[]));
    let client = client_from("127.0.0.1");
    let mut refused = 0;
    // deploy-read-per-account allows a burst of 60 per account; 75 tokens nobody
    // issued, from one address, are one client.
    for i in 0..75 {
        let status = read_with(&client, &gw.url(), "0123456789abcdef", &random_token(i)).await;
        if status == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 15, "75 unknown tokens from one address, {refused} refused");
    let keys = table_keys(&admin, "deploy-read-per-account/account").await;
    assert!(keys <= 1, "unknown tokens grew the table to {keys} keys");
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_spray_does_not_throttle_a_new_honest_account() {
    let platform = platform().await;
    let policy = shipped_policy(&[("max_keys = 100000", "max_keys = 64")]);
    let (gw, admin) = gateway(platform.addr(), &policy);
    // The honest user sits in another network (127.1.0.0/24) than the sprayer.
    let honest = client_from("127.1.0.1");
    let (id, token) = create_account(&honest, &gw.url()).await;
    let sprayer = client_from("127.0.0.2");
    let mut refused = 0;
    for i in 0..3000 {
        if read_with(&sprayer, &gw.url(), "0123456789abcdef", &random_token(i)).await == 429 {
            refused += 1;
        }
    }
    let status = read_with(&honest, &gw.url(), &id, &token).await;
    assert_eq!(status, 200, "the honest account's first read after the spray");
    assert!(refused >= 2900, "the spray was mostly let through: {refused} of 3000 refused");
    let keys = table_keys(&admin, "deploy-read-per-account/account").await;
    assert!(keys <= 64, "the table holds {keys} keys, more than max_keys");

    // Keys that do fill a table: 253 addresses of one /24 (127.0.0.0/24), one `other`
    // call each, against other-per-ip's 64 slots. The newcomers past the cap share
    // their network's overflow bucket; a newcomer from another network is not
    // throttled by them.
    let mut sprayed = 0;
    for host in 2..=254u8 {
        let client = client_from(&format!("127.0.0.{host}"));
        let status = client.get(format!("{}{BASE}/user", gw.url())).send().await.expect("other");
        if status.status() == 429 {
            sprayed += 1;
        }
    }
    assert!(sprayed > 100, "the /24's newcomers past the cap share one bucket: {sprayed} refused");
    let newcomer = client_from("127.2.0.1");
    let status = newcomer.get(format!("{}{BASE}/user", gw.url())).send().await.expect("other");
    assert_ne!(status.status(), 429, "a newcomer from another network after the spray");
    let keys = table_keys(&admin, "other-per-ip/ip").await;
    assert!(keys <= 64 + 64 / 8 + 2, "other-per-ip holds {keys} keys");
    platform.shutdown().await;
}

/// Sends up to `max` requests; the number sent when the first 429 came, if one did.
async fn first_refusal(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    max: usize,
) -> Option<usize> {
    for n in 1..=max {
        let status = client.request(method.clone(), url).send().await.expect("send").status();
        if status == 429 {
            return Some(n);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_limits_other_and_claim_routes() {
    let platform = platform().await;
    let (gw, _admin) = gateway(platform.addr(), &shipped_policy(&[]));
    let client = client_from("127.0.0.1");
    // Guessing claim secrets: each guess is one request to a claim URL.
    let claim =
        first_refusal(&client, reqwest::Method::GET, &format!("{}/claim/guess", gw.url()), 200)
            .await;
    assert!(claim.is_some_and(|n| n <= 31), "claim guesses refused after {claim:?}");
    let post = first_refusal(
        &client,
        reqwest::Method::POST,
        &format!("{}{BASE}/provisioning/previews/0123/claim/guess", gw.url()),
        200,
    )
    .await;
    assert_eq!(post, Some(1), "the claim limit counts both claim patterns together");
    let other =
        first_refusal(&client, reqwest::Method::GET, &format!("{}{BASE}/user", gw.url()), 500)
            .await;
    assert!(other.is_some_and(|n| n <= 121), "other calls refused after {other:?}");
    platform.shutdown().await;
}

/// `gateway demo` on free loopback ports, killed on drop.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_trusts_no_proxy() {
    let platform = platform().await;
    let (gw, _admin) = gateway(platform.addr(), &shipped_policy(&[]));
    let client = client_from("127.0.0.1");
    let challenge = |url: String, i: usize| {
        let client = client.clone();
        async move {
            client
                .post(url)
                .header("x-forwarded-for", format!("198.51.{i}.7"))
                .json(&json!({}))
                .send()
                .await
                .expect("challenge")
                .status()
                .as_u16()
        }
    };
    // challenge-per-ip: burst 5 per address. A loopback peer claiming to forward for
    // eight different clients is still one client.
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(
            challenge(format!("{}{BASE}/provisioning/previews/challenge", gw.url()), i).await,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429], "forwarded-for believed");
    drop(gw);

    // The demo trusts loopback explicitly (its callers simulate clients that way).
    let (listen, platform_listen, admin_listen) = (free_port(), free_port(), free_port());
    let child = std::process::Command::new(workspace_bin("gateway"))
        .current_dir(repo_root())
        .args(["demo", "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--platform-listen", &format!("127.0.0.1:{platform_listen}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_listen}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gateway demo");
    let _demo = Demo(child);
    let addr: SocketAddr = format!("127.0.0.1:{listen}").parse().expect("addr");
    assert!(wait_listening(addr, Duration::from_secs(30)), "demo listens");
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(
            challenge(format!("http://{addr}{BASE}/provisioning/previews/challenge"), i).await,
        );
    }
    assert!(statuses.iter().all(|s| *s == 200), "the demo trusts loopback: {statuses:?}");
    platform.shutdown().await;
}

/// The path as a normalising upstream routes it: percent-decoded, `;params` dropped,
/// empty and `.` segments removed, `..` resolved, lower case.
fn normalise(path: &str) -> String {
    let mut bytes = Vec::new();
    let raw = path.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            if let Some(b) = path.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                bytes.push(b);
                i += 3;
                continue;
            }
        }
        bytes.push(raw[i]);
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&bytes).to_lowercase();
    let mut segs: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    format!("/{}", segs.join("/"))
}

/// An upstream that normalises every path before routing and counts what it served.
async fn normalising_upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let record = record.clone();
        async move {
            let path = normalise(req.uri().path());
            record.lock().expect("seen").push(format!("{} {path}", req.method()));
            axum::Json(json!({"success": true, "errors": [], "messages": [], "result": {}}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

/// One request with a raw request target (no client library rewrites it): the status
/// and the whole answer.
fn raw_post(gw: SocketAddr, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(gw).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let body = "{}";
    let req = format!(
        "POST {target} HTTP/1.1\r\nhost: {gw}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    (out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_canonical_paths_cannot_dodge_their_route_class() {
    let (upstream, seen) = normalising_upstream().await;
    let (gw, _admin) = gateway(upstream, &shipped_policy(&[]));
    let creates = || {
        seen.lock()
            .expect("seen")
            .iter()
            .filter(|s| *s == "POST /client/v4/provisioning/previews")
            .count()
    };
    let create = format!("{BASE}/provisioning/previews");
    // create-per-ip: a burst of 3 accounts from one address.
    let canonical: Vec<u16> = (0..4).map(|_| raw_post(gw.addr, &create).0).collect();
    assert_eq!(canonical, [200, 200, 200, 429], "{}", gw.log_text());
    assert_eq!(creates(), 3);
    // 429: classed as the account creation it is (its limit is spent); 400: a spelling
    // servers resolve differently, refused with a message saying what to send.
    for (target, want) in [
        ("//client/v4/provisioning/previews", 429),
        ("/client/v4//provisioning/previews", 429),
        ("/CLIENT/v4/provisioning/previews", 429),
        ("/client/v4/Provisioning/Previews/", 429),
        ("/client/v4/./provisioning/previews", 400),
        ("/client/v4/x/../provisioning/previews", 400),
        ("/client/v4/x/%2e%2e/provisioning/previews", 400),
        ("/client/v4/provisioning%2Fpreviews", 400),
        ("/client/v4/provisioning%2fpreviews", 400),
        ("/client/v4/%70rovisioning/previews", 400),
        ("/client/v4/provisioning/previews;x=1", 400),
        ("/client/v4/provisioning;x=1/previews", 400),
    ] {
        let (status, answer) = raw_post(gw.addr, target);
        assert_eq!(status, want, "{target}: {answer}");
        if want == 400 {
            assert!(answer.contains("not in canonical form"), "{target}: {answer}");
        }
        assert_eq!(creates(), 3, "{target} reached the upstream as an account creation");
    }
    // A path of no protected class is forwarded however it is spelt.
    assert_eq!(raw_post(gw.addr, "/elsewhere/./x;y=1").0, 200);
}
