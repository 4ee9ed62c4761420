//! How agents react to refusals, against a mock that refuses every
//! challenge with 429 and `Retry-After: 1`, and records what it saw.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use loadtest::{run, RunOptions, Scenario};
use serde_json::json;

#[derive(Default)]
struct Seen {
    forwarded_for: Vec<String>,
    user_agents: Vec<String>,
}

async fn refusing_mock() -> (SocketAddr, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let app = Router::new().route(
        "/client/v4/provisioning/previews/challenge",
        post(move |headers: HeaderMap| {
            let s = s.clone();
            async move {
                let get = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                if let Ok(mut seen) = s.lock() {
                    seen.forwarded_for.push(get("x-forwarded-for"));
                    seen.user_agents.push(get("user-agent"));
                }
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    Json(json!({"success": false, "errors": [{"code": 9429, "message": "slow down"}], "messages": [], "result": null})),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

fn scenario(addr: SocketAddr, archetype: &str, runs: u32) -> Scenario {
    let text = format!(
        r#"
name = "refusals"
duration_secs = 20
[target]
url = "http://{addr}"
[[agents]]
archetype = "{archetype}"
count = 1
arrival_per_sec = 1
deploys = 1
max_runs = {runs}
"#
    );
    Scenario::parse(&text, "inline").expect("parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polite_agents_wait_retry_after_and_rude_ones_do_not() {
    let (addr, _) = refusing_mock().await;
    let started = Instant::now();
    let polite =
        run(scenario(addr, "retry-loop-polite", 3), &RunOptions::default()).await.expect("runs");
    let polite_time = started.elapsed();
    let g = &polite.groups[0];
    assert_eq!((g.requests, g.refused, g.admitted), (3, 3, 0));
    assert_eq!((g.deploys_attempted, g.deploys_completed), (3, 0));
    // Three refusals, each followed by a one-second wait.
    assert!(polite_time.as_secs_f64() >= 2.0, "{polite_time:?}");

    let started = Instant::now();
    let rude =
        run(scenario(addr, "retry-loop-rude", 10), &RunOptions::default()).await.expect("runs");
    let rude_time = started.elapsed();
    let g = &rude.groups[0];
    assert_eq!((g.requests, g.refused), (10, 10));
    assert!(rude_time.as_secs_f64() < 5.0, "{rude_time:?}");
    assert_eq!(g.completion_pct, 0.0);
    assert!(rude.table().contains("retry-loop-rude"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotators_change_address_and_fingerprint() {
    let (addr, seen) = refusing_mock().await;
    run(scenario(addr, "rotate-ipv6-64", 12), &RunOptions::default()).await.expect("runs");
    let xff: Vec<IpAddr> = seen
        .lock()
        .expect("lock")
        .forwarded_for
        .drain(..)
        .map(|s| s.parse().expect("an IP in X-Forwarded-For"))
        .collect();
    assert_eq!(xff.len(), 12);
    let distinct: std::collections::HashSet<_> = xff.iter().collect();
    assert!(distinct.len() > 6, "{xff:?}");
    let prefixes: std::collections::HashSet<_> = xff
        .iter()
        .map(|ip| match ip {
            IpAddr::V6(a) => a.segments()[..4].to_vec(),
            IpAddr::V4(_) => panic!("v4 from a v6 rotator"),
        })
        .collect();
    assert_eq!(prefixes.len(), 1, "left its /64: {xff:?}");

    run(scenario(addr, "rotate-ipv6-48", 12), &RunOptions::default()).await.expect("runs");
    let xff: Vec<IpAddr> = seen
        .lock()
        .expect("lock")
        .forwarded_for
        .drain(..)
        .map(|s| s.parse().expect("IP"))
        .collect();
    let p48: std::collections::HashSet<_> = xff
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V6(a) => Some(a.segments()[..3].to_vec()),
            IpAddr::V4(_) => None,
        })
        .collect();
    let p64: std::collections::HashSet<_> = xff
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V6(a) => Some(a.segments()[..4].to_vec()),
            IpAddr::V4(_) => None,
        })
        .collect();
    assert_eq!(p48.len(), 1, "left its /48");
    assert!(p64.len() > 6, "did not spread over /64s");

    seen.lock().expect("lock").user_agents.clear();
    run(scenario(addr, "rotate-fingerprint", 12), &RunOptions::default()).await.expect("runs");
    let uas: std::collections::HashSet<String> =
        seen.lock().expect("lock").user_agents.drain(..).collect();
    assert!(uas.len() > 1, "{uas:?}");

    run(scenario(addr, "distributed", 12), &RunOptions::default()).await.expect("runs");
    let nets: std::collections::HashSet<[u8; 3]> = seen
        .lock()
        .expect("lock")
        .forwarded_for
        .drain(..)
        .filter_map(|s| match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Some([a.octets()[0], a.octets()[1], a.octets()[2]]),
            _ => None,
        })
        .collect();
    assert!(nets.len() > 6, "{nets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_behaved_agents_use_wrangler_user_agents() {
    let (addr, seen) = refusing_mock().await;
    run(scenario(addr, "well-behaved", 2), &RunOptions::default()).await.expect("runs");
    let s = seen.lock().expect("lock");
    assert!(s.user_agents.iter().all(|u| u == "undici"), "{:?}", s.user_agents);
    assert_eq!(
        s.forwarded_for.iter().collect::<std::collections::HashSet<_>>().len(),
        1,
        "a well-behaved agent keeps its address"
    );
}
