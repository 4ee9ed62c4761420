//! Operator blocks across a fleet: a block set through one gateway's admin API refuses
//! its target on every gateway sharing the Redis, its lifting is shared too, and a
//! gateway killed with SIGKILL comes back with the blocks in force.

use std::time::Duration;

use e2e::redis::RedisServer;
use e2e::{free_port, GatewayProcess, ADMIN_TOKEN};
use serde_json::json;

const POLICY: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
"#;

/// A gateway of the fleet and its admin URL.
struct Member {
    gateway: GatewayProcess,
    admin: String,
}

fn member(upstream: &str, redis: &str) -> Member {
    let admin_port = free_port();
    let body = format!(
        "[upstream]\nurl = \"http://{upstream}\"\n\n[policy]\nfile = \"policy.toml\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\n\n[store]\nredis = \"{redis}\"\n"
    );
    let gateway = GatewayProcess::start_with(&body, |dir| {
        std::fs::write(dir.join("policy.toml"), POLICY).unwrap()
    });
    let admin = format!("127.0.0.1:{admin_port}");
    assert!(e2e::wait_listening(admin.parse().unwrap(), Duration::from_secs(10)));
    Member { gateway, admin: format!("http://{admin}") }
}

/// The status `via` answers a challenge request from `ip` with.
async fn status(client: &reqwest::Client, via: &Member, ip: &str) -> u16 {
    client
        .post(format!("{}/client/v4/provisioning/previews/challenge", via.gateway.url()))
        .header("x-forwarded-for", ip)
        .json(&json!({}))
        .send()
        .await
        .expect("answer")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_set_through_one_gateway_refuses_on_every_gateway_and_survives_a_kill() {
    let redis = RedisServer::start();
    let platform = refplatform::spawn(
        refplatform::PlatformConfig::default(),
        std::sync::Arc::new(refplatform::ManualClock::starting_now()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let upstream = platform.addr().to_string();
    let a = member(&upstream, &redis.url());
    let mut b = member(&upstream, &redis.url());
    let client = reqwest::Client::new();
    assert_eq!(status(&client, &b, "198.51.100.7").await, 200, "not blocked yet");

    let set = client
        .post(format!("{}/operator/blocks", a.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"target": "198.51.100.0/24", "reason": "claim-URL guessing", "ttl_secs": 3600}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 201);
    assert_eq!(status(&client, &a, "198.51.100.7").await, 403, "blocked at once where it was set");
    // B's tail applies the block and says so; from then on B refuses.
    b.gateway.wait_for_log_count("fleet log: block applied", 1);
    assert_eq!(status(&client, &b, "198.51.100.7").await, 403, "blocked on B too");
    assert_eq!(status(&client, &b, "203.0.113.1").await, 200, "others pass on B");

    b.gateway.crash_and_restart();
    let admin = b.admin.trim_start_matches("http://").parse().unwrap();
    assert!(e2e::wait_listening(admin, Duration::from_secs(10)));
    assert_eq!(status(&client, &b, "198.51.100.7").await, 403, "B replays the block at start");

    let lifted = client
        .delete(format!("{}/operator/blocks?target=198.51.100.0/24", a.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(lifted.status(), 200);
    b.gateway.wait_for_log_count("fleet log: block lifted", 1);
    assert_eq!(status(&client, &b, "198.51.100.7").await, 200, "lifted on B too");
}
