//! One identity per request, through the real binary: the account limits count the
//! same client as the rate limits, and `gateway explain` prints the keys the running
//! gateway counts by.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use e2e::GatewayProcess;
use refplatform::{ManualClock, PlatformConfig};

const CF_JA4: &str = "t13d1516h2_8daaf6152771_02713d6af862";

/// A policy behind a trusted proxy at loopback that forwards `cf-connecting-ip` and
/// `cf-ja4`, with one live account per TLS client.
const BEHIND_CF: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.1/32"]
ip_header = "cf-connecting-ip"
tls_fingerprint_header = "cf-ja4"
[accounts.live]
tls_fp = 1
[[rule]]
name = "reads-per-client"
match = { route = "deploy-read" }
action = "limit"
limits = [{ key = "http_fp+ip", rate = "1000/minute", burst = 100 }]
"#;

async fn platform() -> refplatform::RunningPlatform {
    let config = PlatformConfig { pow_k: 4, pow_g: 256, ..PlatformConfig::default() };
    let clock = Arc::new(ManualClock::starting_now());
    refplatform::spawn(config, clock, "127.0.0.1:0".parse().expect("addr")).await.expect("platform")
}

fn gateway(
    platform: &refplatform::RunningPlatform,
    policy: &'static str,
    admin: bool,
) -> GatewayProcess {
    let mut body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n",
        platform.addr()
    );
    if admin {
        let port = e2e::free_port();
        body.push_str(&format!(
            "\n[admin]\nlisten = \"127.0.0.1:{port}\"\nevents_secret = \"identity-test-secret-0123\"\naccounts_file = \"accounts.jsonl\"\n"
        ));
    }
    GatewayProcess::start_with(&body, move |dir| {
        std::fs::write(dir.join("policy.toml"), policy).expect("policy")
    })
}

/// Asks for a challenge and creates an account, as a client behind the proxy whose
/// address is `client`; returns the status and body of the create.
async fn create_behind_proxy(gw: &GatewayProcess, client: &str) -> (u16, String) {
    let api = format!("{}/client/v4", gw.url());
    let headers = [("cf-connecting-ip", client), ("cf-ja4", CF_JA4)];
    let (status, v) = e2e::provision::create(&reqwest::Client::new(), &api, &headers).await;
    (status, v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_account_limits_count_a_trusted_proxys_cf_ja4() {
    let platform = platform().await;
    let gw = gateway(&platform, BEHIND_CF, false);
    let (status, body) = create_behind_proxy(&gw, "203.0.113.1").await;
    assert_eq!(status, 200, "{body}");
    // Another address, the same TLS client as the proxy saw it: over `tls_fp = 1`.
    let (status, body) = create_behind_proxy(&gw, "198.51.100.2").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("your TLS client already has 1 live"), "{body}");
}

/// The value of `field=` in a log line, quotes removed.
fn field<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {field}="))? + field.len() + 2;
    let rest = &line[at..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    Some(rest.split(['"', ' ']).next().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_prints_the_keys_the_running_gateway_counts_by() {
    let platform = platform().await;
    let gw = gateway(&platform, BEHIND_CF, true);
    let token = "an-unknown-token-0123456789";
    let headers = [
        ("User-Agent", "wrangler/4.164.0"),
        ("Accept", "application/json"),
        ("Accept-Encoding", "gzip, br"),
        ("cf-connecting-ip", "203.0.113.44"),
        ("cf-ja4", CF_JA4),
    ];
    let path = "/client/v4/accounts/some-account/workers/scripts";
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", gw.addr);
    for (n, v) in headers {
        request.push_str(&format!("{n}: {v}\r\n"));
    }
    request.push_str(&format!("Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"));
    let mut stream = std::net::TcpStream::connect(gw.addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1"), "{answer}");

    let logged = gw.wait_for_log(&format!("path={path}"));
    let line = logged
        .lines()
        .rev()
        .find(|l| l.contains(path) && l.contains(" request"))
        .expect("the access log line")
        .to_string();
    let mut explain = std::process::Command::new(e2e::workspace_bin("gateway"));
    explain.args([
        "explain",
        "--method",
        "GET",
        "--path",
        path,
        "--ip",
        "127.0.0.1",
        "--token",
        token,
    ]);
    explain.arg("--policy").arg(gw.dir.path().join("policy.toml"));
    explain.arg("--accounts-file").arg(gw.dir.path().join("accounts.jsonl"));
    explain.args(["-H", &format!("Host: {}", gw.addr)]);
    for (n, v) in headers {
        explain.args(["-H", &format!("{n}: {v}")]);
    }
    explain.args(["-H", "Connection: close"]);
    let out = explain.output().expect("explain");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let printed = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {label} in:\n{text}"))
            .to_string()
    };
    assert_eq!(Some(printed("client ip:").as_str()), field(&line, "client"), "{line}\n{text}");
    assert_eq!(Some(printed("tls_fp:").as_str()), field(&line, "tls_fp"), "{line}\n{text}");
    // An unknown token is no account to the policy; the access log and explain name
    // it by the same keyed hash.
    assert_eq!(printed("account:"), "(absent)", "{text}");
    assert_eq!(Some(printed("token:").as_str()), field(&line, "account_key"), "{line}\n{text}");
    assert_eq!(Some(printed("http_fp:").as_str()), field(&line, "http_fp"), "{line}\n{text}");
    assert!(printed("token:").starts_with("tok_") && !text.contains(token), "{text}");
}
