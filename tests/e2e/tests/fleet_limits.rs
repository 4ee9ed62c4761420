//! Fleet mode: rate limits shared by several real gateway binaries through one Redis
//! (or a Redis Cluster), the store's outages (`on_store_error = "open" | "closed"`),
//! the fleet converging when Redis is back, and the over-limit cache that answers
//! refusals without asking Redis.
//!
//! Every limit here is per hour, so the tests drive bursts: nothing waits for time to
//! pass. Clients all come from 127.0.0.1, so `key = "ip"` is one bucket for the test.

use e2e::ADMIN_TOKEN;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::redis::{RedisCluster, RedisServer};
use e2e::{free_port, GatewayProcess};
use refplatform::{ManualClock, PlatformConfig};

const CHALLENGE: &str = "/client/v4/provisioning/previews/challenge";

async fn start_platform() -> refplatform::RunningPlatform {
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig { pow_k: 4, pow_g: 256, ..PlatformConfig::default() };
    refplatform::spawn(config, clock, "127.0.0.1:0".parse().expect("addr")).await.expect("platform")
}

/// A policy limiting challenge requests per client address (and, with `global`, for
/// everyone) to a burst of `burst` per hour; `store` is the policy's `[store]` body.
fn policy(burst: u32, global: Option<u32>, store: &str) -> String {
    let global = global
        .map(|g| format!(", {{ key = \"global\", rate = \"1/hour\", burst = {g} }}"))
        .unwrap_or_default();
    format!(
        "version = 1\n[client]\ntrusted_proxies = []\n{store}\n[[rule]]\nname = \"challenge\"\nmatch = {{ route = \"provision-challenge\" }}\naction = \"limit\"\nlimits = [{{ key = \"ip\", rate = \"1/hour\", burst = {burst} }}{global}]\n"
    )
}

/// A gateway with `policy`, sharing its limits through `redis` (a `[store] redis`
/// value as written in gateway.toml), with an admin listener for `/stats`.
struct FleetGateway {
    process: GatewayProcess,
    admin: String,
}

fn gateway(platform: &refplatform::RunningPlatform, redis: &str, policy: &str) -> FleetGateway {
    let admin_port = free_port();
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[store]\nredis = {redis}\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\n",
        platform.addr()
    );
    let policy = policy.to_string();
    let process = GatewayProcess::start_with(&body, move |dir| {
        std::fs::write(dir.join("policy.toml"), policy).expect("policy");
    });
    FleetGateway { process, admin: format!("http://127.0.0.1:{admin_port}") }
}

fn single(redis: &RedisServer) -> String {
    format!("\"{}\"", redis.url())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// One challenge request: status and body.
async fn challenge(http: &reqwest::Client, gw: &FleetGateway) -> (u16, String) {
    let r = http
        .post(format!("{}{CHALLENGE}", gw.process.url()))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap_or_else(|e| panic!("request: {e}\n{}", gw.process.log_text()));
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// Sends `per_gateway` challenge requests to every gateway at once (all in flight
/// together) and returns how many each gateway admitted, and every other status seen.
async fn burst(gateways: &[&FleetGateway], per_gateway: usize) -> (Vec<usize>, Vec<u16>) {
    let http = client();
    let mut tasks = Vec::new();
    for (i, gw) in gateways.iter().enumerate() {
        for _ in 0..per_gateway {
            let http = http.clone();
            let url = format!("{}{CHALLENGE}", gw.process.url());
            tasks.push(tokio::spawn(async move {
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .expect("request");
                (i, r.status().as_u16())
            }));
        }
    }
    let mut admitted = vec![0; gateways.len()];
    let mut others = Vec::new();
    for t in tasks {
        let (i, status) = t.await.expect("task");
        match status {
            200 => admitted[i] += 1,
            429 => {}
            s => others.push(s),
        }
    }
    (admitted, others)
}

async fn stats(gw: &FleetGateway) -> serde_json::Value {
    client()
        .get(format!("{}/stats", gw.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

/// Waits (bounded, 20 s) until the gateway's health probe sees the store as `up`.
async fn wait_store(gw: &FleetGateway, up: bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if stats(gw).await["store"]["up"].as_bool() == Some(up) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the store never reported up = {up}:\n{}", gw.process.log_text());
}

/// EVAL and EVALSHA calls the Redis server has answered.
fn script_calls(redis: &RedisServer) -> u64 {
    redis
        .cli(&["info", "commandstats"])
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_on_one_redis_admit_the_shared_limit_exactly() {
    let platform = start_platform().await;
    let redis = RedisServer::start();
    let p = policy(10, None, "");
    let a = gateway(&platform, &single(&redis), &p);
    let b = gateway(&platform, &single(&redis), &p);
    let (admitted, others) = burst(&[&a, &b], 20).await;
    assert!(others.is_empty(), "unexpected statuses {others:?}");
    assert_eq!(
        admitted.iter().sum::<usize>(),
        10,
        "two gateways on one Redis admit the shared burst of 10 exactly (per gateway: {admitted:?})"
    );
    // One bucket, empty now: it expires when full again, 10 x 6 minutes from now.
    let keys = redis.cli(&["--scan", "--pattern", "gw:rl:*"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: u64 = redis.cli(&["pttl", keys[0]]).trim().parse().expect("pttl");
    assert!((35_900_000..=36_000_000).contains(&ttl), "expires when full again: {ttl} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_on_one_redis_admit_the_shared_limit_exactly() {
    let platform = start_platform().await;
    let redis = RedisServer::start();
    let p = policy(12, None, "");
    let gws: Vec<FleetGateway> = (0..3).map(|_| gateway(&platform, &single(&redis), &p)).collect();
    let (admitted, others) = burst(&gws.iter().collect::<Vec<_>>(), 15).await;
    assert!(others.is_empty(), "unexpected statuses {others:?}");
    assert_eq!(admitted.iter().sum::<usize>(), 12, "per gateway: {admitted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_on_a_redis_cluster_admit_the_shared_limit_exactly() {
    let platform = start_platform().await;
    let cluster = RedisCluster::start(3);
    let nodes = format!(
        "[{}]",
        cluster.urls().iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ")
    );
    // Two limits whose keys hash to different slots: `ip` binds first (8), `global`
    // (9) is charged too, in its own slot, and only for requests `ip` admitted (were
    // the slots charged independently, racing requests could spend `global` on
    // requests `ip` refuses, and fewer than 8 would be admitted).
    let p = policy(8, Some(9), "");
    let gws: Vec<FleetGateway> = (0..3).map(|_| gateway(&platform, &nodes, &p)).collect();
    let (admitted, others) = burst(&gws.iter().collect::<Vec<_>>(), 15).await;
    assert!(others.is_empty(), "unexpected statuses {others:?}");
    assert_eq!(admitted.iter().sum::<usize>(), 8, "per gateway: {admitted:?}");
    // The buckets live in the cluster, under hash-tagged keys of the gateway.
    let keys: usize = cluster
        .nodes
        .iter()
        .map(|n| n.cli(&["--scan", "--pattern", "gw:rl:*"]).lines().count())
        .sum();
    assert_eq!(keys, 2, "one bucket per limit in the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_with_closed_rules_refuses_with_503_then_the_fleet_converges() {
    let platform = start_platform().await;
    let mut redis = RedisServer::start();
    let p = policy(6, None, "[store]\non_store_error = \"closed\"\n");
    let a = gateway(&platform, &single(&redis), &p);
    let b = gateway(&platform, &single(&redis), &p);
    let (admitted, _) = burst(&[&a, &b], 1).await;
    assert_eq!(admitted, vec![1, 1]);
    redis.kill();
    let http = client();
    for gw in [&a, &b] {
        for _ in 0..3 {
            let start = Instant::now();
            let (status, body) = challenge(&http, gw).await;
            let took = start.elapsed();
            assert_eq!(status, 503, "closed rule with the store down: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("v4 envelope");
            assert_eq!(v["success"], false, "{body}");
            let message = v["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("shared rate-limit store") && message.contains("Retry"),
                "the envelope says why and what to do: {message}"
            );
            assert!(took < Duration::from_secs(1), "an outage request waited {took:?}");
        }
        // A request no limit covers never needs the store and is forwarded at once.
        let start = Instant::now();
        let r = http.get(format!("{}/client/v4/user", gw.process.url())).send().await;
        assert!(r.is_ok() && start.elapsed() < Duration::from_secs(1));
    }
    let s = stats(&a).await;
    assert_eq!(s["store"]["up"], false, "{s}");
    assert!(s["store"]["errors"].as_u64().unwrap_or(0) >= 3, "{s}");
    // Redis is back (empty: it keeps no snapshot): the fleet shares one burst again.
    redis.restart();
    wait_store(&a, true).await;
    wait_store(&b, true).await;
    let (admitted, others) = burst(&[&a, &b], 8).await;
    assert!(others.is_empty(), "unexpected statuses {others:?}");
    assert_eq!(admitted.iter().sum::<usize>(), 6, "shared again: {admitted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_with_open_rules_falls_back_to_each_gateways_local_limit() {
    let platform = start_platform().await;
    let mut redis = RedisServer::start();
    let p = policy(6, None, "[store]\non_store_error = \"open\"\n");
    let a = gateway(&platform, &single(&redis), &p);
    let b = gateway(&platform, &single(&redis), &p);
    let http = client();
    for _ in 0..2 {
        assert_eq!(challenge(&http, &a).await.0, 200);
    }
    assert_eq!(challenge(&http, &b).await.0, 200);
    redis.kill();
    // Each gateway's local limiter counted what it admitted itself: `a` has 4 left of
    // its 6, `b` 5. Together they admit at most N x burst = 12 over the outage.
    let (admitted, others) = burst(&[&a, &b], 10).await;
    assert!(others.is_empty(), "open rules never answer 503: {others:?}");
    assert_eq!(admitted, vec![4, 5], "local limits hold per gateway");
    let s = stats(&a).await;
    assert!(s["store"]["limits"]["local_fallbacks"].as_u64().unwrap_or(0) >= 10, "{s}");
    redis.restart();
    wait_store(&a, true).await;
    wait_store(&b, true).await;
    let (admitted, _) = burst(&[&a, &b], 8).await;
    assert_eq!(admitted.iter().sum::<usize>(), 6, "shared again: {admitted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_over_limit_cache_answers_refusals_without_redis() {
    let platform = start_platform().await;
    let mut redis = RedisServer::start();
    let p = policy(3, None, "[store]\non_store_error = \"closed\"\n");
    let gw = gateway(&platform, &single(&redis), &p);
    let http = client();
    for _ in 0..3 {
        assert_eq!(challenge(&http, &gw).await.0, 200);
    }
    let (status, _) = challenge(&http, &gw).await;
    assert_eq!(status, 429);
    let asked = script_calls(&redis);
    assert!(asked >= 4, "every decision so far asked Redis ({asked})");
    for _ in 0..20 {
        assert_eq!(challenge(&http, &gw).await.0, 429);
    }
    assert_eq!(script_calls(&redis), asked, "cached refusals never reach Redis");
    let s = stats(&gw).await;
    assert_eq!(s["store"]["limits"]["cached_refusals"], 20, "{s}");
    let metrics = client()
        .get(format!("{}/metrics", gw.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    for line in [
        "gateway_store_up 1",
        "gateway_store_cached_refusals_total 20",
        "gateway_store_errors_total 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert!(metrics.contains("# TYPE gateway_store_latency_seconds summary"), "{metrics}");
    // Even with Redis gone, a key known to be over its limit is refused with 429 (its
    // retry time is known), not 503.
    redis.kill();
    let (status, body) = challenge(&http, &gw).await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_redis_costs_a_request_at_most_the_response_timeout() {
    let platform = start_platform().await;
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let p = policy(100, None, "[store]\non_store_error = \"closed\"\n");
    let gw = gateway(&platform, &single(&redis), &p);
    let http = client();
    assert_eq!(challenge(&http, &gw).await.0, 200);
    // Redis stops answering for 3 s (it accepts commands and sits on them).
    let port = redis.port;
    let stall = std::thread::spawn(move || {
        let mut cmd = std::process::Command::new("redis-cli");
        cmd.args(["-p", &port.to_string(), "debug", "sleep", "3"]);
        e2e::run_bounded(cmd, Duration::from_secs(20))
    });
    // Bounded: the stall begins within a few requests; each request, stalled or not,
    // is answered within the 250 ms response timeout plus the gateway's own work.
    let mut stalled = None;
    for _ in 0..200 {
        let start = Instant::now();
        let (status, body) = challenge(&http, &gw).await;
        let took = start.elapsed();
        assert!(took < Duration::from_millis(900), "a request waited {took:?} ({status})");
        if status == 503 {
            stalled = Some((took, body));
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let (took, body) = stalled.expect("the stalled Redis was noticed");
    assert!(took >= Duration::from_millis(200), "the 503 came after the timeout: {took:?}");
    assert!(body.contains("shared rate-limit store"), "{body}");
    // A request no limit covers does not wait for the stalled store.
    let start = Instant::now();
    let _ = http.get(format!("{}/client/v4/user", gw.process.url())).send().await;
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
    let _ = stall.join();
}
