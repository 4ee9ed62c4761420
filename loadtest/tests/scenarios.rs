//! Every shipped scenario, run at small scale straight against an
//! in-process reference platform (no gateway binary needed), plus the CLI
//! end to end on the smoke scenario.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loadtest::{run, RunOptions, Scenario};
use refplatform::{spawn, PlatformConfig, SystemClock};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn shipped() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("scenarios folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// The bare platform with its temporary-account limits lifted: these tests check what
/// the tester counts, so nothing may be refused (the resource hogs fill every quota).
async fn platform() -> refplatform::RunningPlatform {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let lifted = refplatform::PlatformLimits {
        worker_scripts: usize::MAX,
        kv_namespaces: usize::MAX,
        d1_databases: usize::MAX,
        queues: usize::MAX,
        hyperdrive_configs: usize::MAX,
        asset_files: usize::MAX,
        asset_file_bytes: u64::MAX,
    };
    let config = PlatformConfig { limits: lifted, ..PlatformConfig::default() };
    spawn(config, Arc::new(SystemClock), addr).await.expect("platform starts")
}

#[test]
fn shipped_scenarios_include_default_and_smoke() {
    let names: Vec<String> = shipped()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(names.contains(&"default.toml".to_string()), "{names:?}");
    assert!(names.contains(&"smoke.toml".to_string()), "{names:?}");
    for p in shipped() {
        Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_scenario_runs_at_small_scale() {
    for file in shipped() {
        let running = platform().await;
        let scenario = Scenario::load(&file).expect("scenario parses");
        let opts = RunOptions {
            scale: 0.05,
            target_url: Some(format!("http://{}", running.addr())),
            // A bound, not a target: the default scenario's proof-of-work replays wait
            // for accounts to expire on the platform's 25 s lifetime, so a slow machine
            // needs room beyond the ~30 s it takes here.
            max_duration_secs: Some(80.0),
            scenario_file: Some(file.clone()),
            ..RunOptions::default()
        };
        let report = run(scenario.clone(), &opts).await.expect("run completes");
        let name = file.display();
        let t = &report.totals;
        assert!(t.requests > 0, "{name}: no requests");
        assert_eq!(t.errors, 0, "{name}: errors: {}", report.table());
        // The bare platform, its limits lifted, refuses nothing but the quota evader's
        // malformed framings (a repeated Content-Length, a body past the platform's own
        // size cap), which any HTTP server refuses: every deploy completes.
        let refused: u64 =
            report.groups.iter().filter(|g| g.archetype != "quota-evader").map(|g| g.refused).sum();
        assert_eq!(refused, 0, "{name}: {}", report.table());
        assert_eq!(t.deploys_completed, t.deploys_attempted, "{name}: {}", report.table());
        assert_eq!(report.stopped_by, "all agents finished", "{name}: {}", report.table());
        // What the tester counted is what the platform holds.
        let accounts = running.platform().accounts();
        assert_eq!(accounts.len() as u64, t.accounts_created, "{name}");
        let claimed =
            accounts.iter().filter(|a| a.status == refplatform::AccountStatus::Claimed).count()
                as u64;
        assert_eq!(claimed, t.accounts_claimed, "{name}");
        for g in &report.groups {
            assert!(g.agents >= 1, "{name}: {}", g.label);
            assert!(g.deploys_completed >= 1, "{name}: {} deployed nothing", g.label);
            match g.archetype.as_str() {
                "well-behaved" => {
                    assert_eq!(g.accounts_claimed, g.accounts_created, "{name}: {}", g.label);
                    assert_eq!(g.cleanup.cleanup_units, 0.0);
                    assert_eq!(g.cleanup.basis, "estimate");
                }
                "resource-hog" => {
                    assert!(g.resources_created > 0, "{name}: hog created nothing");
                    assert_eq!(g.resources_refused, 0, "{name}: {:?}", g.error_samples);
                }
                _ => assert_eq!(g.accounts_claimed, 0, "{name}: {}", g.label),
            }
            assert!(g.latency.count > 0 && g.latency.p99_ms >= g.latency.p50_ms);
        }
        // Resource hogs really filled the platform's counters.
        if let Some(hog) = report.groups.iter().find(|g| g.archetype == "resource-hog") {
            let total_resources: u64 = accounts
                .iter()
                .map(|a| {
                    a.counts.kv_namespaces
                        + a.counts.d1_databases
                        + a.counts.queues
                        + a.counts.asset_files
                })
                .sum();
            assert!(total_resources >= hog.resources_created, "{name}");
        }
        running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_encoding_of_checkpoints_is_accepted_too() {
    let running = platform().await;
    let scenario = Scenario::load(&scenario_dir().join("smoke.toml")).expect("smoke parses");
    let opts = RunOptions {
        scale: 0.1,
        target_url: Some(format!("http://localhost:{}", running.addr().port())),
        max_duration_secs: Some(30.0),
        pow_encoding: loadtest::pow::Encoding::List,
        ..RunOptions::default()
    };
    let report = run(scenario, &opts).await.expect("run completes");
    assert!(report.totals.accounts_created > 0, "{}", report.table());
    assert_eq!(report.totals.errors, 0, "{}", report.table());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_at_the_duration_even_with_work_left() {
    let running = platform().await;
    let text = format!(
        r#"
name = "bounded"
duration_secs = 2
[target]
url = "http://{}"
[[agents]]
archetype = "retry-loop-polite"
count = 3
arrival_per_sec = 50
deploys = 100000
max_runs = 100000
max_requests = 1000000
"#,
        running.addr()
    );
    let scenario = Scenario::parse(&text, "inline").expect("parses");
    let started = std::time::Instant::now();
    let report = run(scenario, &RunOptions::default()).await.expect("runs");
    assert!(started.elapsed().as_secs_f64() < 20.0, "took {:?}", started.elapsed());
    assert_eq!(report.stopped_by, "duration reached");
    assert!(report.totals.deploys_completed > 0);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_budget_stops_the_run() {
    let running = platform().await;
    let text = format!(
        r#"
name = "budget"
duration_secs = 60
max_requests = 50
[target]
url = "http://{}"
[[agents]]
archetype = "retry-loop-rude"
count = 2
arrival_per_sec = 50
deploys = 100000
max_runs = 100000
max_requests = 1000000
"#,
        running.addr()
    );
    let scenario = Scenario::parse(&text, "inline").expect("parses");
    let report = run(scenario, &RunOptions::default()).await.expect("runs");
    assert!(report.totals.requests <= 50, "{}", report.totals.requests);
    assert_eq!(report.stopped_by, "request budget spent");
    running.shutdown().await;
}

#[test]
fn cli_runs_smoke_and_writes_json_and_chart() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let running = rt.block_on(platform());
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let svg = dir.path().join("chart.svg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("run")
        .arg(scenario_dir().join("smoke.toml"))
        .arg("--target-url")
        .arg(format!("http://{}", running.addr()))
        .arg("--json")
        .arg(&json)
        .arg("--chart")
        .arg(&svg)
        .arg("--max-duration")
        .arg("30")
        .output()
        .expect("loadtest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("well-behaved") && stdout.contains("TOTAL"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    assert!(report["totals"]["requests_per_sec"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(report["totals"]["latency"]["p99_ms"].is_number());
    assert!(report["groups"][0]["timeline"].is_array());
    let chart = std::fs::read_to_string(&svg).expect("svg written");
    assert!(
        chart.starts_with("<svg") && chart.contains("cleanup cost"),
        "{}",
        &chart[..200.min(chart.len())]
    );
    // No secrets on the terminal or in the report.
    let report_text = std::fs::read_to_string(&json).expect("json");
    for text in [stdout.as_ref(), stderr.as_ref(), report_text.as_str()] {
        assert!(!text.contains("/claim/"), "claim URL leaked");
        assert!(!text.to_lowercase().contains("apitoken"), "token leaked");
    }
    rt.block_on(running.shutdown());
}

#[test]
fn cli_check_accepts_shipped_and_rejects_bad() {
    for file in shipped() {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .arg("check")
            .arg(&file)
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nduration_secs = 5\ntarget = { url = \"http://192.0.2.1:80\" }\n[[agents]]\narchetype = \"well-behaved\"\ncount = 1\narrival_per_sec = 1\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("check")
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_binds_across_loopback_work() {
    let running = platform().await;
    let text = format!(
        r#"
name = "binds"
duration_secs = 20
[target]
url = "http://{}"
[network]
bind_source = true
forwarded_for = false
[[agents]]
archetype = "distributed"
count = 3
arrival_per_sec = 20
deploys = 1
"#,
        running.addr()
    );
    let scenario = Scenario::parse(&text, "inline").expect("parses");
    let report = run(scenario, &RunOptions::default()).await.expect("runs");
    assert_eq!(report.totals.errors, 0, "{}", report.table());
    assert_eq!(report.totals.deploys_completed, 3, "{}", report.table());
    running.shutdown().await;
}

/// The gateway binary of this build: `target/<profile>/gateway`, next to
/// the folder (`deps`) holding this test executable. `cargo build
/// --workspace --all-targets` builds it before the tests run.
fn gateway_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("gateway{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build -p gateway` (CI builds the workspace before testing)",
        bin.display()
    );
    bin
}

/// The smoke scenario through the real gateway binary and rules/default.toml:
/// well-behaved agents deploy and claim, the rude loop is refused new
/// accounts by the per-IP limits, the hog's second D1 database is refused
/// by the quota, and the cleanup cost comes from the gateway's ledger.
#[test]
fn smoke_through_a_spawned_gateway_uses_the_ledger() {
    let bin = gateway_bin();
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let svg = dir.path().join("report.svg");
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .arg("run")
        .arg(scenario_dir().join("smoke.toml"))
        .arg("--gateway-bin")
        .arg(&bin)
        .arg("--json")
        .arg(&json)
        .arg("--chart")
        .arg(&svg)
        .arg("--max-duration")
        .arg("30")
        .arg("--check")
        .output()
        .expect("loadtest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(started.elapsed().as_secs() < 50, "took {:?}", started.elapsed());
    assert!(stdout.contains("spawned gateway"), "{stdout}");
    assert!(stdout.contains("acceptance:") && stdout.contains("PASS"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid");
    assert!(
        report["cleanup_cost_basis"].as_str().unwrap_or("").starts_with("gateway ledger"),
        "{stdout}"
    );
    assert!(report["ledger"]["entries"].as_u64().unwrap_or(0) > 0, "{stdout}");
    let group = |arch: &str| {
        report["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["archetype"] == arch))
            .cloned()
            .unwrap_or_else(|| panic!("no {arch} group:\n{stdout}"))
    };
    let well = group("well-behaved");
    assert_eq!(well["deploys_completed"], well["deploys_wanted"], "{stdout}");
    assert_eq!(well["cleanup"]["accounts_claimed"], well["accounts_created"], "{stdout}");
    assert_eq!(well["cleanup"]["cleanup_units"].as_f64(), Some(0.0), "{stdout}");
    assert!(well["cleanup"]["claim_credit_units"].as_i64().unwrap_or(0) < 0, "{stdout}");

    let rude = group("retry-loop-rude");
    assert!(rude["refused"].as_u64().unwrap_or(0) > 0, "{stdout}");
    let reasons = rude["refusal_reasons"].to_string();
    assert!(reasons.contains("create account") || reasons.contains("challenge"), "{reasons}");
    let c = &rude["cleanup"];
    assert_eq!(c["basis"], "ledger", "{stdout}");
    let created = rude["accounts_created"].as_u64().unwrap_or(0);
    assert!(created >= 1, "{stdout}");
    // Every account expired unclaimed and was charged by the gateway:
    // 10 units per account + 5 for its Worker script (rules/default.toml).
    assert_eq!(c["accounts_expired_unclaimed"].as_u64(), Some(created), "{stdout}");
    assert_eq!(c["accounts_unsettled"].as_u64(), Some(0), "{stdout}");
    assert_eq!(c["cleanup_units"].as_f64(), Some(15.0 * created as f64), "{stdout}");
    assert_eq!(c["within_budget"], true, "{stdout}");
    assert_eq!(c["worst_key"]["refuse_at"].as_u64(), Some(150), "{stdout}");

    let hog = group("resource-hog");
    assert!(hog["resources_refused"].as_u64().unwrap_or(0) >= 1, "{stdout}");
    assert!(hog["cleanup"]["cleanup_units"].as_f64().unwrap_or(0.0) > 15.0, "{stdout}");

    let chart = std::fs::read_to_string(&svg).expect("svg");
    assert!(chart.contains("gateway ledger") && chart.contains("refuse budget"));
    for text in [stdout.as_ref(), stderr.as_ref()] {
        assert!(!text.contains("/claim/"), "claim URL leaked");
        assert!(!text.to_lowercase().contains("apitoken"), "token leaked");
    }
}
