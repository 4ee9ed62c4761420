//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use refplatform::{spawn, ManualClock, PlatformConfig, RunningPlatform};
use serde_json::{json, Value};

/// A platform on 127.0.0.1:0 with a manual clock and tiny PoW.
pub async fn start(config: PlatformConfig) -> (RunningPlatform, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    let running =
        spawn(config, clock.clone(), "127.0.0.1:0".parse().expect("addr")).await.expect("spawn");
    (running, clock)
}

/// Challenge + solve + create; returns the create response `result`.
pub async fn create_account(http: &reqwest::Client, base: &str) -> Value {
    let ch: Value = http
        .post(format!("{base}/provisioning/previews/challenge"))
        .json(&json!({}))
        .send()
        .await
        .expect("challenge")
        .json()
        .await
        .expect("challenge json");
    let challenge: refplatform::pow::Challenge =
        serde_json::from_value(ch["result"].clone()).expect("challenge shape");
    let cps = challenge.solve().expect("solve");
    let res = http
        .post(format!("{base}/provisioning/previews"))
        .json(&json!({
            "acceptTermsOfService": "yes",
            "challengeToken": challenge.challenge_token,
            "solution": {"checkpoints": refplatform::pow::encode_checkpoints(&cps)},
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("create json");
    assert_eq!(body["success"], true);
    body["result"].clone()
}
