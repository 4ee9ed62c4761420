//! The two provisioning calls as wrangler makes them, for tests that need accounts made
//! through the gateway: ask for a challenge, solve it, create.

use refplatform::pow::{encode_checkpoints, Challenge, Checkpoint};
use serde_json::{json, Value};

/// The create body wrangler sends for a challenge solved with `checkpoints`.
pub fn create_body(challenge_token: &str, checkpoints: &[Checkpoint]) -> Value {
    json!({
        "termsOfService": "https://example.test/terms", "privacyPolicy": "https://example.test/privacy",
        "acceptTermsOfService": "yes", "challengeToken": challenge_token,
        "solution": {"checkpoints": encode_checkpoints(checkpoints)}
    })
}

/// Asks `api` (a base URL ending in `/client/v4`) for a challenge with `headers`;
/// panics unless it is answered 200 with a challenge.
pub async fn challenge(client: &reqwest::Client, api: &str, headers: &[(&str, &str)]) -> Challenge {
    let mut req = client.post(format!("{api}/provisioning/previews/challenge")).json(&json!({}));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("challenge sent");
    assert_eq!(resp.status(), 200, "challenge with {headers:?}");
    let v: Value = resp.json().await.expect("challenge json");
    serde_json::from_value(v["result"].clone()).expect("challenge shape")
}

/// Gets a challenge, solves it and creates an account, both calls with `headers`;
/// returns the create's status and its body (`Null` when it is not JSON).
pub async fn create(client: &reqwest::Client, api: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let challenge = challenge(client, api, headers).await;
    let checkpoints = challenge.solve().expect("solvable");
    let mut req = client
        .post(format!("{api}/provisioning/previews"))
        .json(&create_body(&challenge.challenge_token, &checkpoints));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("create sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}
