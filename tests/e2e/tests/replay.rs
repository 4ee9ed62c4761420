//! `gateway replay` on a log the real gateway recorded: traffic from many sources
//! through `rules/default.toml` (accounts created by the real protocol, challenges
//! past the per-address limit, reads with the accounts' tokens), replayed through
//! the same policy (no decision may differ: the self-check that makes a difference
//! mean something) and through `rules/strict.toml` (it must refuse more, and
//! nothing default refused).

use std::path::Path;
use std::time::Duration;

use e2e::GatewayProcess;
use refplatform::{ManualClock, PlatformConfig};
use serde_json::{json, Value};

/// Sources, each in a /24 of its own (the load tester's benchmark network).
const SOURCES: usize = 8;

/// The reference platform and a gateway in front of it running `rules/default.toml`
/// with an access log file.
async fn record() -> (GatewayProcess, refplatform::RunningPlatform) {
    let clock = std::sync::Arc::new(ManualClock::starting_now());
    let config = PlatformConfig { pow_k: 2, pow_g: 64, ..PlatformConfig::default() };
    let platform = refplatform::spawn(config, clock, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    // Loopback is trusted so that X-Forwarded-For names each simulated source.
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\ntrust_loopback = true\n\n[access_log]\nfile = \"access.jsonl\"\n",
        platform.addr()
    );
    let default = e2e::repo_root().join("rules/default.toml");
    let gateway = GatewayProcess::start_with(&body, |dir| {
        std::fs::copy(&default, dir.join("policy.toml")).expect("copy rules/default.toml");
    });
    (gateway, platform)
}

async fn traffic(gateway: &GatewayProcess) {
    let client = reqwest::Client::new();
    let api = format!("{}/client/v4", gateway.url());
    for i in 0..SOURCES {
        let ip = format!("198.18.{i}.7");
        let headers = [("x-forwarded-for", ip.as_str()), ("user-agent", "wrangler/4.164.0")];
        // Three accounts: within default's burst of 3 per address, over strict's 2.
        let mut token = None;
        for _ in 0..3 {
            let (status, v) = e2e::provision::create(&client, &api, &headers).await;
            if status == 200 {
                let id = v["result"]["account"]["id"].as_str().unwrap_or_default().to_string();
                let t = v["result"]["account"]["apiToken"].as_str().unwrap_or_default().to_string();
                token = Some((id, t));
            }
        }
        // Four more challenges: past default's burst of 5 and strict's 3.
        for _ in 0..4 {
            let mut req = client.post(format!("{api}/provisioning/previews/challenge"));
            for (n, v) in headers {
                req = req.header(n, v);
            }
            let _ = req.json(&json!({})).send().await.expect("challenge sent");
        }
        // Reads with the token: within default's burst of 60, past strict's 30.
        if let Some((id, t)) = &token {
            for _ in 0..35 {
                let resp = client
                    .get(format!("{api}/accounts/{id}/workers/scripts"))
                    .bearer_auth(t)
                    .header("x-forwarded-for", ip.as_str())
                    .send()
                    .await
                    .expect("read sent");
                assert!(resp.status().as_u16() < 500, "read: {}", resp.status());
            }
        }
    }
}

fn replay(policy: &Path, log: &Path) -> Value {
    let out = std::process::Command::new(e2e::workspace_bin("gateway"))
        .arg("replay")
        .arg("--policy")
        .arg(policy)
        .arg("--log")
        .arg(log)
        .arg("--json")
        .output()
        .expect("gateway replay");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_through_the_recording_policy_changes_nothing_and_strict_refuses_more() {
    let (mut gateway, _platform) = record().await;
    traffic(&gateway).await;
    gateway.signal("TERM");
    assert!(gateway.wait_exit(Duration::from_secs(10)).is_some(), "gateway did not stop");
    let log = gateway.dir.path().join("access.jsonl");
    let root = e2e::repo_root();

    // The self-check first: the recording policy, replayed, decides the same.
    let same = replay(&gateway.dir.path().join("policy.toml"), &log);
    let requests = same["requests"].as_u64().unwrap_or_default();
    assert!(requests >= (SOURCES * (6 + 4 + 35)) as u64, "{same}");
    assert_eq!(same["skipped"], 0, "{same}");
    assert!(
        same["recorded"]["refused"].as_u64().unwrap_or_default() >= 2 * SOURCES as u64,
        "{same}"
    );
    assert_eq!(same["replayed"], same["requests"], "every request went through the engine: {same}");
    for field in ["allow_to_refuse", "refuse_to_allow", "refused_by_another_rule"] {
        assert_eq!(same[field], 0, "{field}: {same:#}");
    }
    assert_eq!(same["recorded"], same["candidate"], "{same}");

    // Strict refuses more, and everything default refused.
    let strict = replay(&root.join("rules/strict.toml"), &log);
    assert!(strict["allow_to_refuse"].as_u64().unwrap_or_default() > 0, "{strict:#}");
    assert_eq!(strict["refuse_to_allow"], 0, "{strict:#}");
    assert!(
        strict["candidate"]["refused"].as_u64() >= strict["recorded"]["refused"].as_u64(),
        "{strict:#}"
    );
    let rules = strict["rules"].as_array().cloned().unwrap_or_default();
    let changed_by = |name: &str| {
        rules
            .iter()
            .find(|r| r["rule"] == name)
            .map_or(0, |r| r["allow_to_refuse"].as_u64().unwrap_or(0))
    };
    assert!(changed_by("create-per-ip") >= SOURCES as u64, "{strict:#}");
    assert!(changed_by("challenge-per-ip") >= SOURCES as u64, "{strict:#}");
    assert!(changed_by("deploy-read-per-account") >= SOURCES as u64, "{strict:#}");
    let sources = strict["sources"].as_array().cloned().unwrap_or_default();
    assert!(!sources.is_empty(), "{strict:#}");
    assert!(sources.iter().all(|s| s["source"].as_str().is_some_and(|s| s.starts_with("198.18."))));

    // A damaged line is located on stderr, counted, and the rest still replayed.
    let damaged = gateway.dir.path().join("damaged.jsonl");
    let mut text = std::fs::read_to_string(&log).expect("access log");
    text.push_str("{\"ts\":\"not a time\"\n");
    std::fs::write(&damaged, &text).expect("write damaged log");
    let out = std::process::Command::new(e2e::workspace_bin("gateway"))
        .arg("replay")
        .arg("--policy")
        .arg(gateway.dir.path().join("policy.toml"))
        .arg("--log")
        .arg(&damaged)
        .arg("--json")
        .output()
        .expect("gateway replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = text.lines().count();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("damaged.jsonl:{last}: not an access-log line")), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        (report["skipped"].as_u64(), report["requests"].as_u64()),
        (Some(1), Some(requests))
    );

    // The text report, for the README.
    let text = std::process::Command::new(e2e::workspace_bin("gateway"))
        .arg("replay")
        .arg("--policy")
        .arg(root.join("rules/strict.toml"))
        .arg("--log")
        .arg(&log)
        .arg("--top")
        .arg("3")
        .output()
        .expect("gateway replay");
    eprintln!("gateway replay said:\n{}", String::from_utf8_lossy(&text.stdout));
}

/// A load test run's own log: `loadtest run` of the smoke scenario (its spawned
/// gateway enforcing `rules/default.toml`, agents of several kinds, the rude loop
/// refused) writes an access log, which replays with no difference through the same
/// policy and with more refusals, never fewer, through `rules/strict.toml`.
#[test]
fn a_load_test_runs_log_replays_through_strict() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.jsonl");
    let root = e2e::repo_root();
    let mut cmd = std::process::Command::new(e2e::workspace_bin("loadtest"));
    cmd.current_dir(&root)
        .arg("run")
        .arg("loadtest/scenarios/smoke.toml")
        .arg("--gateway-bin")
        .arg(e2e::workspace_bin("gateway"))
        .arg("--access-log")
        .arg(&log)
        .args(["--max-duration", "15", "--quiet"]);
    let out = e2e::run_bounded(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "loadtest: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let same = replay(&root.join("rules/default.toml"), &log);
    assert!(same["requests"].as_u64().unwrap_or_default() > 50, "{same}");
    assert!(same["recorded"]["refused"].as_u64().unwrap_or_default() > 0, "{same}");
    for field in ["allow_to_refuse", "refuse_to_allow", "refused_by_another_rule"] {
        assert_eq!(same[field], 0, "{field} through the recording policy: {same:#}");
    }
    let strict = replay(&root.join("rules/strict.toml"), &log);
    assert_eq!(strict["refuse_to_allow"], 0, "{strict:#}");
    assert!(strict["allow_to_refuse"].as_u64().unwrap_or_default() > 0, "{strict:#}");
}
