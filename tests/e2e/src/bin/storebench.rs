//! `storebench`: throughput and p99 latency of the gateway with the embedded store
//! (`[store] path`) against the same gateway keeping its state in memory, measured in
//! one run, as ratios. Run by `scripts/bench-store.sh`; not a test.
//!
//! The reference platform runs in this process; two gateways (release binary given as
//! the first argument) run in front of it, one per mode, with the same policy. Two
//! workloads, each the path that writes to the store on every request:
//! - `resources`: every worker holds an account made through the gateway and creates
//!   then deletes a queue, over and over (each 2xx answer commits the account's
//!   resource counts before it is passed on);
//! - `accounts`: every worker fetches a challenge, solves it and creates an account
//!   from an address of its own (each create answer is held until the account is
//!   committed).
//!
//! Modes run interleaved for `ROUNDS` rounds of `DURATION` seconds each, the first mode
//! of a round alternating; the report prints medians over the rounds. Loopback only;
//! the gateways are killed by pid on exit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::provision::create_body;
use refplatform::pow::Challenge;
use refplatform::{ManualClock, PlatformConfig};
use serde_json::{json, Value};

const POLICY: &str = "version = 1\n[client]\ntrusted_proxies = [\"127.0.0.0/8\"]\n";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One gateway process and its folder.
struct Gateway {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(bin: &Path, upstream: &str, store: bool) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = e2e::free_port();
    let store = if store { "[store]\npath = \"state.db\"\n" } else { "" };
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 1\n\n[upstream]\nurl = \"http://{upstream}\"\n\n[policy]\nfile = \"policy.toml\"\n\n{store}"
    );
    std::fs::write(dir.path().join("policy.toml"), POLICY).expect("policy");
    std::fs::write(dir.path().join("gateway.toml"), config).expect("config");
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(dir.path().join("gateway.toml"))
        .env("GATEWAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("gateway starts");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    assert!(e2e::wait_listening(addr, Duration::from_secs(30)), "gateway listens");
    Gateway { child, url: format!("http://127.0.0.1:{port}/client/v4"), _dir: dir }
}

/// A challenge, solved, and a create from `ip`: the account's (id, token).
async fn create(client: &reqwest::Client, api: &str, ip: &str) -> Option<(String, String)> {
    let v: Value = client
        .post(format!("{api}/provisioning/previews/challenge"))
        .header("x-forwarded-for", ip)
        .json(&json!({}))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let challenge: Challenge = serde_json::from_value(v["result"].clone()).ok()?;
    let checkpoints = challenge.solve().ok()?;
    let v: Value = client
        .post(format!("{api}/provisioning/previews"))
        .header("x-forwarded-for", ip)
        .json(&create_body(&challenge.challenge_token, &checkpoints))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let account = &v["result"]["account"];
    Some((account["id"].as_str()?.to_string(), account["apiToken"].as_str()?.to_string()))
}

/// Latencies of the successful requests of one measured run, and its length.
struct Run {
    latencies: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
    fn p(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }
}

static NEXT_IP: AtomicU32 = AtomicU32::new(1);

fn fresh_ip() -> String {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    // A /24 of its own each: the default per-network account limits never trip.
    format!("10.{}.{}.1", (n >> 8) & 255, n & 255)
}

async fn run(api: Arc<String>, workload: &str, workers: usize, secs: u64) -> Run {
    let client = reqwest::Client::new();
    let mut accounts = Vec::new();
    if workload == "resources" {
        for _ in 0..workers {
            accounts.push(create(&client, &api, &fresh_ip()).await.expect("bench account"));
        }
    }
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, api, account) = (client.clone(), api.clone(), accounts.get(w).cloned());
        let workload = workload.to_string();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            let mut i = 0u64;
            while Instant::now() < until {
                i += 1;
                let t = Instant::now();
                let ok = match (&account, workload.as_str()) {
                    (Some((id, token)), _) => {
                        queue_round(&client, &api, id, token, i, &mut lat).await
                    }
                    (None, _) => create(&client, &api, &fresh_ip()).await.is_some(),
                };
                if account.is_none() && ok {
                    lat.push(t.elapsed());
                }
                errors += u64::from(!ok);
            }
            (lat, errors)
        }));
    }
    let mut out = Run { latencies: Vec::new(), errors: 0, elapsed: Duration::ZERO };
    for t in tasks {
        let (lat, errors) = t.await.expect("worker");
        out.latencies.extend(lat);
        out.errors += errors;
    }
    out.elapsed = start.elapsed();
    out
}

/// Creates then deletes one queue; each request's latency goes into `lat`.
async fn queue_round(
    client: &reqwest::Client,
    api: &str,
    id: &str,
    token: &str,
    i: u64,
    lat: &mut Vec<Duration>,
) -> bool {
    let t = Instant::now();
    let Ok(resp) = client
        .post(format!("{api}/accounts/{id}/queues"))
        .bearer_auth(token)
        .json(&json!({ "queue_name": format!("q{i}") }))
        .send()
        .await
    else {
        return false;
    };
    let Ok(v) = resp.json::<Value>().await else { return false };
    lat.push(t.elapsed());
    let Some(queue) = v["result"]["queue_id"].as_str() else { return false };
    let t = Instant::now();
    let deleted = client
        .delete(format!("{api}/accounts/{id}/queues/{queue}"))
        .bearer_auth(token)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    lat.push(t.elapsed());
    deleted
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = PathBuf::from(std::env::args().nth(1).expect("usage: storebench GATEWAY_BINARY"));
    let (secs, rounds, workers) =
        (env_or("DURATION", 10), env_or("ROUNDS", 3), env_or("WORKERS", 16) as usize);
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig { pow_k: 2, pow_g: 64, ..PlatformConfig::default() };
    let platform = refplatform::spawn(config, clock, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("platform");
    let upstream = platform.addr().to_string();
    // `STORE_FIRST=1` starts the store's gateway first (a check that the start order
    // does not favour either).
    let (memory, store) = if env_or("STORE_FIRST", 0) == 1 {
        let store = start_gateway(&bin, &upstream, true);
        (start_gateway(&bin, &upstream, false), store)
    } else {
        (start_gateway(&bin, &upstream, false), start_gateway(&bin, &upstream, true))
    };
    println!("{workers} workers, {secs} s per run, {rounds} rounds, modes interleaved");
    println!(
        "{:<10} {:<7} {:>5} {:>10} {:>9} {:>9} {:>7}",
        "workload", "mode", "round", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for workload in ["resources", "accounts"] {
        let (mut thr, mut p99) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            // Which mode goes first alternates, so neither gains from its place in a round.
            let mut order = [("memory", &memory), ("store", &store)];
            if round % 2 == 0 {
                order.reverse();
            }
            let mut row = [(0.0, 0.0); 2];
            for (mode, gw) in order {
                let r = run(Arc::new(gw.url.clone()), workload, workers, secs).await;
                let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                println!(
                    "{workload:<10} {mode:<7} {round:>5} {:>10.1} {:>9.2} {:>9.2} {:>7}",
                    r.per_sec(),
                    ms(r.p(0.5)),
                    ms(r.p(0.99)),
                    r.errors
                );
                row[usize::from(mode == "store")] = (r.per_sec(), ms(r.p(0.99)));
            }
            thr.push(row[1].0 / row[0].0);
            p99.push(row[1].1 / row[0].1);
        }
        println!(
            "{workload}: store/memory throughput {:.3}, p99 {:.3} (medians over {rounds} rounds)",
            median(thr),
            median(p99)
        );
    }
}
