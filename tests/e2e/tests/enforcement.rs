//! Policy enforcement through the real gateway binary: refusals, headers, keep-alive,
//! client identity, shadow rules, live reload, and what real wrangler shows its user.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use e2e::{GatewayProcess, Wrangler};
use refplatform::{ManualClock, PlatformConfig};

const CHALLENGE: &str = "/client/v4/provisioning/previews/challenge";

async fn start_platform() -> refplatform::RunningPlatform {
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig { pow_k: 4, pow_g: 256, ..PlatformConfig::default() };
    refplatform::spawn(config, clock, "127.0.0.1:0".parse().unwrap()).await.expect("platform")
}

/// A gateway in front of `platform` with `policy` as its policy file.
fn gateway_with_policy(platform: &refplatform::RunningPlatform, policy: &str) -> GatewayProcess {
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n",
        platform.addr()
    );
    let policy = policy.to_string();
    GatewayProcess::start_with(&body, move |dir: &Path| {
        std::fs::write(dir.join("policy.toml"), policy).expect("policy");
    })
}

/// One HTTP/1.1 exchange on an existing connection: status, reason, headers, body.
struct Exchange {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A kept-alive connection to the gateway, used like an HTTP client would: when an
/// answer says `Connection: close` the next request goes on a new connection (Pingora
/// says so when the platform answered before the request body was read, which a busy
/// machine makes happen). Failures show the gateway's log.
struct Conn {
    reader: BufReader<TcpStream>,
    addr: std::net::SocketAddr,
    log: std::path::PathBuf,
    sent: usize,
}

fn exchange(conn: &mut Conn, method: &str, path: &str, extra: &[(&str, &str)]) -> Exchange {
    conn.sent += 1;
    let exchange = match try_exchange(&mut conn.reader, method, path, extra) {
        Ok(e) => e,
        Err(e) => panic!(
            "request {} on this connection: {e}\ngateway log:\n{}",
            conn.sent,
            std::fs::read_to_string(&conn.log).unwrap_or_default()
        ),
    };
    if exchange.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
        conn.reader = open(conn.addr);
    }
    exchange
}

fn open(addr: std::net::SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    BufReader::new(stream)
}

fn try_exchange(
    reader: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> Result<Exchange, String> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: gateway.test\r\nuser-agent: undici\r\ncontent-length: 2\r\n");
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n{}");
    reader.get_mut().write_all(req.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| format!("status line: {e}"))?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let _version = parts.next();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let reason = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).map_err(|e| format!("header: {e}"))?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .ok_or("every answer must be length-delimited")?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;
    Ok(Exchange { status, reason, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn connect(gateway: &GatewayProcess) -> Conn {
    Conn { reader: open(gateway.addr), addr: gateway.addr, log: gateway.log.clone(), sent: 0 }
}

const BURST_3: &str = r#"
version = 1
[client]
trusted_proxies = []
[[rule]]
name = "challenge-per-ip"
match = { route = "provision-challenge" }
action = "limit"
limits = [{ key = "ip", rate = "1/hour", burst = 3 }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_is_refused_with_headers_and_the_connection_is_kept() {
    let platform = start_platform().await;
    let gateway = gateway_with_policy(&platform, BURST_3);
    let mut conn = connect(&gateway);
    for i in 0..3 {
        let ok = exchange(&mut conn, "POST", CHALLENGE, &[]);
        assert_eq!(ok.status, 200, "request {i} within the burst: {}", ok.body);
        assert_eq!(ok.header("ratelimit-policy"), Some("\"challenge-per-ip\";q=1;w=3600"));
        assert!(ok.header("ratelimit").is_some_and(|v| v.starts_with("\"challenge-per-ip\";r=")));
    }
    // Past the burst: refused, on the same connection, which stays open for more.
    for _ in 0..2 {
        let refused = exchange(&mut conn, "POST", CHALLENGE, &[]);
        assert_eq!(refused.status, 429);
        let retry: u64 =
            refused.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
        assert!(retry > 0 && retry <= 3600, "retry {retry}");
        assert_ne!(refused.header("connection"), Some("close"));
        let envelope: serde_json::Value = serde_json::from_str(&refused.body).expect("v4 envelope");
        assert_eq!(envelope["success"], false);
        let message = envelope["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("challenge-per-ip") && message.contains("Retry in"), "{message}");
        assert!(
            refused.reason.contains("challenge-per-ip"),
            "reason phrase names the limit: {}",
            refused.reason
        );
        assert!(refused.header("ratelimit").is_some_and(|v| v.contains(";r=0;")));
    }
    // Only the three admitted requests reached the platform.
    let seen = platform.platform().request_log().iter().filter(|r| r.path == CHALLENGE).count();
    assert_eq!(seen, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_an_untrusted_peer_change_nothing() {
    let platform = start_platform().await;
    let gateway = gateway_with_policy(&platform, BURST_3);
    let mut conn = connect(&gateway);
    let mut statuses = Vec::new();
    for i in 0..5 {
        let xff = format!("198.51.100.{i}");
        let r = exchange(
            &mut conn,
            "POST",
            CHALLENGE,
            &[("x-forwarded-for", &xff), ("cf-connecting-ip", &xff)],
        );
        statuses.push(r.status);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429], "still counted as 127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_rotating_inside_one_ipv6_64_share_its_limit() {
    let platform = start_platform().await;
    let policy = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
[[rule]]
name = "challenge-per-64"
match = { route = "provision-challenge" }
action = "limit"
limits = [{ key = "ipv6/64", rate = "1/hour", burst = 4 }]
"#;
    let gateway = gateway_with_policy(&platform, policy);
    let mut conn = connect(&gateway);
    let mut statuses = Vec::new();
    for i in 0..6 {
        let addr = format!("2001:db8:1:2:{i:x}:{:x}::1", i * 7919 % 65536);
        statuses.push(exchange(&mut conn, "POST", CHALLENGE, &[("x-forwarded-for", &addr)]).status);
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 429, 429]);
    // Another /64 has its own budget.
    let other = exchange(&mut conn, "POST", CHALLENGE, &[("x-forwarded-for", "2001:db8:1:3::1")]);
    assert_eq!(other.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_rules_forward_and_report() {
    let platform = start_platform().await;
    let policy = r#"
version = 1
[client]
trusted_proxies = []
[[rule]]
name = "trial-tight-limit"
match = { route = "provision-challenge" }
action = "shadow"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
"#;
    let gateway = gateway_with_policy(&platform, policy);
    let mut conn = connect(&gateway);
    for _ in 0..3 {
        assert_eq!(exchange(&mut conn, "POST", CHALLENGE, &[]).status, 200);
    }
    let log = gateway.wait_for_log("shadow rules would have refused");
    assert_eq!(log.matches("shadow rules would have refused").count(), 2, "{log}");
    assert!(log.contains("trial-tight-limit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_with_a_broken_file_keeps_enforcing_the_old_policy() {
    let platform = start_platform().await;
    let gateway = gateway_with_policy(&platform, BURST_3);
    let policy_path = gateway.dir.path().join("policy.toml");
    let mut conn = connect(&gateway);
    assert_eq!(exchange(&mut conn, "POST", CHALLENGE, &[]).status, 200);

    // A typo: the reload is rejected with a located error and nothing changes.
    std::fs::write(&policy_path, BURST_3.replace("burst = 3", "burts = 30")).unwrap();
    gateway.signal("HUP");
    let log = gateway.wait_for_log("did you mean \"burst\"");
    assert!(log.contains("policy reload rejected"), "{log}");
    assert!(log.contains("policy.toml:9:"), "error is located:\n{log}");
    assert!(log.contains("did you mean \"burst\""), "with a suggestion:\n{log}");
    let statuses: Vec<u16> =
        (0..3).map(|_| exchange(&mut conn, "POST", CHALLENGE, &[]).status).collect();
    assert_eq!(statuses, vec![200, 200, 429], "old policy and its counters still in force");

    // A valid edit is picked up by the file watcher; the changed limit starts afresh.
    std::fs::write(&policy_path, BURST_3.replace("burst = 3", "burst = 5")).unwrap();
    gateway.wait_for_log("policy reloaded");
    let statuses: Vec<u16> =
        (0..6).map(|_| exchange(&mut conn, "POST", CHALLENGE, &[]).status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrangler_prints_the_refusal_when_provisioning_is_over_its_limit() {
    let platform = start_platform().await;
    let policy = r#"
version = 1
[client]
trusted_proxies = []
[[rule]]
name = "create-per-ip"
match = { route = "provision-create" }
action = "limit"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
message = "at most 1 temporary account per hour from your IP address"
advice = "or claim the account you already have"
"#;
    let gateway = gateway_with_policy(&platform, policy);
    let wrangler = Arc::new(Wrangler::locate());
    let tmp = tempfile::tempdir().unwrap();
    let api = format!("{}/client/v4", gateway.url());
    let deploy = |home: &str| {
        let (w, project, home, api) = (
            wrangler.clone(),
            Wrangler::project(tmp.path(), "limited"),
            tmp.path().join(home),
            api.clone(),
        );
        tokio::task::spawn_blocking(move || w.deploy_temporary(&project, &home, &api, &[]))
    };
    let first = deploy("home-a").await.unwrap();
    assert!(first.ok(), "first account is within the limit:\n{}", first.text());
    // A fresh HOME has no cached account: wrangler provisions again and is refused.
    let second = deploy("home-b").await.unwrap();
    let text = second.text();
    assert!(!second.ok(), "second provisioning must be refused:\n{text}");
    assert!(text.contains("429"), "{text}");
    assert!(
        text.contains("at most 1 temporary account per hour"),
        "wrangler shows the limit:\n{text}"
    );
    assert!(text.contains("Retry in"), "and when to retry:\n{text}");
    eprintln!("wrangler said:\n{text}");
    assert_eq!(
        platform.platform().accounts().len(),
        1,
        "the refused creation never reached the platform"
    );
}
