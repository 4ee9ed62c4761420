//! Signed events reach a receiver on claim, expiry and deletion; the
//! internal reconciliation API answers with the events secret only.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use refplatform::events::verify_signature;
use refplatform::{EventType, EventsConfig, PlatformConfig, PlatformEvent, SIGNATURE_HEADER};
use serde_json::Value;
use tokio::sync::mpsc;

const SECRET: &str = "test-events-secret";

/// Start a receiver that forwards (signature ok?, event) to a channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(bool, PlatformEvent)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let tx = Arc::new(tx);
    let app = Router::new().route(
        "/events",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let sig =
                    headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
                let ok = verify_signature(SECRET, &body, sig);
                if let Ok(ev) = serde_json::from_slice::<PlatformEvent>(&body) {
                    let _ = tx.send((ok, ev));
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/events"), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(bool, PlatformEvent)>) -> (bool, PlatformEvent) {
    // A bound on waiting, not a sleep: the event normally arrives at once.
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("event did not arrive")
        .expect("channel closed")
}

#[tokio::test]
async fn claim_and_expiry_events_are_signed_and_delivered() {
    let (url, mut rx) = receiver().await;
    let config = PlatformConfig {
        events: Some(EventsConfig { url, secret: SECRET.into() }),
        ..PlatformConfig::default()
    };
    let (running, clock) = common::start(config).await;
    let http = reqwest::Client::new();
    let base = running.api_base_url();
    let claimed = common::create_account(&http, &base).await;
    let expiring = common::create_account(&http, &base).await;
    let expiring_id = expiring["account"]["id"].as_str().expect("id").to_string();
    let res = http
        .post(format!("{base}/accounts/{expiring_id}/storage/kv/namespaces"))
        .bearer_auth(expiring["account"]["apiToken"].as_str().expect("token"))
        .json(&serde_json::json!({"title": "t"}))
        .send()
        .await
        .expect("kv");
    assert_eq!(res.status(), 200);

    let res =
        http.post(claimed["claim"]["url"].as_str().expect("url")).send().await.expect("claim");
    assert_eq!(res.status(), 200);
    let (sig_ok, ev) = next(&mut rx).await;
    assert!(sig_ok, "bad signature");
    assert_eq!(ev.kind, EventType::Claimed);
    assert_eq!(ev.account_id, claimed["account"]["id"].as_str().expect("id"));

    clock.advance(Duration::from_secs(3601));
    let recs = running.platform().sweep();
    assert_eq!(recs.len(), 1);
    let (sig_ok, ev) = next(&mut rx).await;
    assert!(sig_ok);
    assert_eq!(ev.kind, EventType::Expired);
    assert_eq!(ev.account_id, expiring_id);
    assert_eq!(ev.removed.kv_namespaces, 1);
    assert_eq!(ev.at, clock_now(&running));

    // Reconciliation API.
    let internal = format!("http://{}/internal/accounts", running.addr());
    let res = http.get(format!("{internal}/{expiring_id}")).send().await.expect("get");
    assert_eq!(res.status(), 401);
    let res = http
        .get(format!("{internal}/{expiring_id}"))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.expect("json");
    assert_eq!(b["result"]["status"], "expired");
    let b: Value = http
        .get(&internal)
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let statuses: Vec<&str> = b["result"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert!(statuses.contains(&"claimed") && statuses.contains(&"expired"));

    // Explicit deletion emits "deleted".
    let third = common::create_account(&http, &base).await;
    let third_id = third["account"]["id"].as_str().expect("id");
    let res = http
        .delete(format!("{internal}/{third_id}"))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 200);
    let (sig_ok, ev) = next(&mut rx).await;
    assert!(sig_ok);
    assert_eq!(ev.kind, EventType::Deleted);
    running.shutdown().await;
}

fn clock_now(running: &refplatform::RunningPlatform) -> time::OffsetDateTime {
    running.platform().now()
}

#[tokio::test]
async fn unreachable_receiver_is_not_fatal() {
    let config = PlatformConfig {
        events: Some(EventsConfig {
            url: "http://127.0.0.1:9/nowhere".into(),
            secret: SECRET.into(),
        }),
        ..PlatformConfig::default()
    };
    let (running, _clock) = common::start(config).await;
    let http = reqwest::Client::new();
    let acct = common::create_account(&http, &running.api_base_url()).await;
    let res = http.post(acct["claim"]["url"].as_str().expect("url")).send().await.expect("claim");
    assert_eq!(res.status(), 200);
    assert_eq!(running.platform().event_log().len(), 1);
    running.shutdown().await;
}

/// With a status token configured, the status API takes only that token: the events
/// secret no longer opens it, so the two credentials are apart.
#[tokio::test]
async fn a_separate_status_token_is_the_only_bearer_of_the_status_api() {
    let config = PlatformConfig {
        events: Some(EventsConfig {
            url: "http://127.0.0.1:9/nowhere".into(),
            secret: SECRET.into(),
        }),
        status_token: Some("status-token-apart-from-the-secret".into()),
        ..PlatformConfig::default()
    };
    let (running, _clock) = common::start(config).await;
    let http = reqwest::Client::new();
    let internal = format!("http://{}/internal/accounts", running.addr());
    let with = |token: &'static str| http.get(&internal).bearer_auth(token).send();
    assert_eq!(with(SECRET).await.expect("get").status(), 401, "the events secret is refused");
    assert_eq!(with("status-token-apart-from-the-secret").await.expect("get").status(), 200);
    assert_eq!(http.get(&internal).send().await.expect("get").status(), 401);
    running.shutdown().await;
}
